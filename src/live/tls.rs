//! The local certificate authority of live mode: a root kept in the state directory (so a
//! developer trusts it once), and a server certificate it signs for `localhost`, `127.0.0.1`
//! and `::1`, which every HTTPS listener of a live load balancer presents.
//!
//! The root's private key never leaves its file (mode 0600); nothing here prints key material.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The root's file names inside its directory.
const ROOT_CERT: &str = "root.pem";
const ROOT_KEY: &str = "root-key.pem";

/// The local CA and the acceptors its server certificate makes.
#[derive(Clone)]
pub(crate) struct LocalCa {
    /// Where the root certificate (PEM) is: what a client trusts.
    pub(crate) root_pem: PathBuf,
    /// TLS 1.2 and 1.3.
    default: TlsAcceptor,
    /// TLS 1.3 only (a load balancer's `tls13` policy).
    modern: TlsAcceptor,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("root_pem", &self.root_pem).finish_non_exhaustive()
    }
}

fn root_params() -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Konstacks");
    dn.push(DnType::CommonName, "Konstacks live local CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2035, 1, 1);
    Ok(p)
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl LocalCa {
    /// The CA kept in `dir` (created on first use), and a fresh server certificate it signs.
    pub(crate) fn open(dir: &Path) -> Result<Self, String> {
        let fail = |e: rcgen::Error| format!("local certificate authority: {e}");
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cert_path = dir.join(ROOT_CERT);
        let key_path = dir.join(ROOT_KEY);
        let existing = std::fs::read_to_string(&key_path).ok().filter(|_| cert_path.is_file());
        let (root_key, root_cert_pem) = match existing.and_then(|pem| KeyPair::from_pem(&pem).ok()) {
            // The saved root is what clients trust; the same name and key rebuild its issuer.
            Some(key) => {
                let pem = std::fs::read_to_string(&cert_path)
                    .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
                (key, pem)
            }
            None => {
                let key = KeyPair::generate().map_err(fail)?;
                let cert = root_params()?.self_signed(&key).map_err(fail)?;
                write_private(&key_path, &key.serialize_pem())?;
                std::fs::write(&cert_path, cert.pem())
                    .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
                (key, cert.pem())
            }
        };
        let issuer = root_params()?.self_signed(&root_key).map_err(fail)?;

        let leaf_key = KeyPair::generate().map_err(fail)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(fail)?;
        leaf.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        leaf.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        leaf.distinguished_name = dn;
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = rcgen::date_time_ymd(2025, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let leaf = leaf.signed_by(&leaf_key, &issuer, &root_key).map_err(fail)?;

        let root_der = rustls::pki_types::pem::PemObject::from_pem_slice(root_cert_pem.as_bytes())
            .map_err(|e| format!("cannot read the root certificate {}: {e}", cert_path.display()))?;
        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), root_der];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let acceptor = |versions: &[&'static rustls::SupportedProtocolVersion]| -> Result<TlsAcceptor, String> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(versions)
                .map_err(|e| format!("TLS configuration: {e}"))?
                .with_no_client_auth()
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("TLS configuration: {e}"))?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(Self {
            root_pem: cert_path,
            default: acceptor(&[&rustls::version::TLS13, &rustls::version::TLS12])?,
            modern: acceptor(&[&rustls::version::TLS13])?,
        })
    }

    /// The acceptor of a listener: TLS 1.3 only when `tls13_only`, else TLS 1.2 and 1.3.
    pub(crate) fn acceptor(&self, tls13_only: bool) -> TlsAcceptor {
        if tls13_only {
            self.modern.clone()
        } else {
            self.default.clone()
        }
    }
}
