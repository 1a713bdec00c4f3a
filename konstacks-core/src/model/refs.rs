//! Typed handles: [`Ref<T>`] to a resource added to a stack and [`Output<T>`] to a value known
//! only after apply. Both are `Copy`-cheap and typed, and erase to an untyped node reference.

use std::fmt;
use std::marker::PhantomData;

/// A typed handle to a resource added to a stack. `Copy`, and typed: a `Ref<Subnet>` cannot be
/// passed where a `Ref<Vpc>` is expected.
pub struct Ref<T> {
    pub(crate) stack: u32,
    pub(crate) index: u32,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Ref<T> {
    pub(crate) fn new(stack: u32, index: u32) -> Self {
        Self { stack, index, _kind: PhantomData }
    }

    pub(crate) fn erase(&self) -> NodeRef {
        NodeRef { stack: self.stack, index: self.index }
    }

    /// An output of this resource: `attr` of its observed state, secret or not.
    pub fn output<O>(&self, attr: &'static str, secret: bool) -> Output<O> {
        Output { source: self.erase(), attr, secret, _t: PhantomData }
    }
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ref<T> {}
impl<T> PartialEq for Ref<T> {
    fn eq(&self, other: &Self) -> bool {
        self.stack == other.stack && self.index == other.index
    }
}
impl<T> Eq for Ref<T> {}
impl<T> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref({}#{})", self.stack, self.index)
    }
}

/// A type-erased reference to a node: which stack, which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NodeRef {
    pub(crate) stack: u32,
    pub(crate) index: u32,
}

/// A value known only after the resource it comes from has been applied. Using it in another
/// resource records a dependency edge; a secret output stays redacted everywhere.
pub struct Output<T> {
    pub(crate) source: NodeRef,
    pub(crate) attr: &'static str,
    pub(crate) secret: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        Self { source: self.source, attr: self.attr, secret: self.secret, _t: PhantomData }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Output({}#{}.{})", self.source.stack, self.source.index, self.attr)
    }
}

impl<T> Output<T> {
    /// Whether the value is secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// The same output, typed as `U` (where the value's type no longer matters: exports).
    pub(crate) fn retype<U>(&self) -> Output<U> {
        Output { source: self.source, attr: self.attr, secret: self.secret, _t: PhantomData }
    }
}
