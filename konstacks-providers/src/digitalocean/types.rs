//! Typed request and response bodies of the DigitalOcean API v2 endpoints this backend uses,
//! written from DigitalOcean's OpenAPI description. Only the fields Konstacks reads or writes
//! are modelled; unknown fields in answers are ignored, and absent optional fields default.
//!
//! This module owns the wire shapes only: it never decides anything about Konstacks resources.

use serde::{Deserialize, Serialize};

/// Pagination links of a list answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// Page links; absent on the last page.
    #[serde(default)]
    pub pages: Option<PageLinks>,
}

/// The page links DigitalOcean returns (`links.pages`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageLinks {
    /// URI of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// URI of the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// URI of the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// URI of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

/// `meta` of a list answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Total number of items across all pages.
    pub total: u64,
}

/// The error body DigitalOcean returns with every 4xx / 5xx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Short identifier (`not_found`, `unprocessable_entity`, ...).
    #[serde(default)]
    pub id: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// Request id, when the endpoint gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

// ---- VPCs ----

/// A VPC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    /// UUID.
    pub id: String,
    /// Uniform resource name (`do:vpc:<id>`).
    #[serde(default)]
    pub urn: String,
    /// Name, unique in the account.
    pub name: String,
    /// Free text, at most 255 characters (Konstacks keeps the resource's labels here).
    #[serde(default)]
    pub description: String,
    /// Region slug.
    pub region: String,
    /// IPv4 range in CIDR notation.
    pub ip_range: String,
    /// Whether it is the region's default VPC.
    #[serde(default)]
    pub default: bool,
    /// Creation time, RFC 3339.
    #[serde(default)]
    pub created_at: String,
}

/// `POST /v2/vpcs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpcCreate {
    /// Name (`[a-zA-Z0-9.-]+`).
    pub name: String,
    /// Region slug.
    pub region: String,
    /// IPv4 range, between /16 and /28.
    pub ip_range: String,
    /// Description.
    pub description: String,
}

/// `PATCH /v2/vpcs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpcPatch {
    /// New name.
    pub name: String,
    /// New description.
    pub description: String,
}

/// `{"vpc": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct VpcEnvelope {
    /// The VPC.
    pub vpc: Vpc,
}

/// A page of `GET /v2/vpcs`.
#[derive(Debug, Clone, Deserialize)]
pub struct VpcList {
    /// VPCs.
    #[serde(default)]
    pub vpcs: Vec<Vpc>,
    /// Links.
    #[serde(default)]
    pub links: Option<Links>,
}

// ---- tags ----

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Name (`[a-zA-Z0-9_:-]`, at most 255 characters).
    pub name: String,
    /// How many resources carry it (answers only).
    #[serde(default, skip_serializing)]
    pub resources: Option<TagStats>,
}

/// Resource counts of a tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagStats {
    /// Resources tagged with it.
    #[serde(default)]
    pub count: u64,
}

/// `{"tag": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct TagEnvelope {
    /// The tag.
    pub tag: Tag,
}

/// A page of `GET /v2/tags`.
#[derive(Debug, Clone, Deserialize)]
pub struct TagList {
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Links.
    #[serde(default)]
    pub links: Option<Links>,
}

/// One resource to tag or untag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResource {
    /// Id of the resource, as a string.
    pub resource_id: String,
    /// `droplet`, `image`, `volume` or `volume_snapshot`.
    pub resource_type: String,
}

/// `POST` / `DELETE /v2/tags/{tag}/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResources {
    /// The resources.
    pub resources: Vec<TagResource>,
}

// ---- firewalls ----

/// Where traffic of a firewall rule comes from or goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTarget {
    /// IPv4 / IPv6 addresses and CIDR blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Droplet ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub droplet_ids: Vec<u64>,
    /// Load balancer ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_uids: Vec<String>,
    /// Kubernetes cluster ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_ids: Vec<String>,
    /// Tags naming groups of droplets.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

/// An inbound rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRule {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// `"80"`, `"8000-9000"`, or `"0"` for every port.
    pub ports: String,
    /// Sources.
    pub sources: RuleTarget,
}

/// An outbound rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRule {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// `"80"`, `"8000-9000"`, or `"0"` for every port.
    pub ports: String,
    /// Destinations.
    pub destinations: RuleTarget,
}

/// A cloud firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// `waiting`, `succeeded` or `failed`.
    #[serde(default)]
    pub status: String,
    /// Inbound rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub inbound_rules: Vec<InboundRule>,
    /// Outbound rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub outbound_rules: Vec<OutboundRule>,
    /// Droplets the firewall applies to by id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub droplet_ids: Vec<u64>,
    /// Tags whose droplets the firewall applies to.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: String,
}

/// `POST /v2/firewalls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirewallCreate {
    /// Name.
    pub name: String,
    /// Inbound rules.
    pub inbound_rules: Vec<InboundRule>,
    /// Outbound rules.
    pub outbound_rules: Vec<OutboundRule>,
    /// Tags whose droplets it applies to (they must exist).
    pub tags: Vec<String>,
}

/// `POST` / `DELETE /v2/firewalls/{id}/rules`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewallRules {
    /// Inbound rules.
    pub inbound_rules: Vec<InboundRule>,
    /// Outbound rules.
    pub outbound_rules: Vec<OutboundRule>,
}

/// `POST` / `DELETE /v2/firewalls/{id}/tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirewallTags {
    /// Tag names (they must exist).
    pub tags: Vec<String>,
}

/// `{"firewall": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct FirewallEnvelope {
    /// The firewall.
    pub firewall: Firewall,
}

/// A page of `GET /v2/firewalls`.
#[derive(Debug, Clone, Deserialize)]
pub struct FirewallList {
    /// Firewalls.
    #[serde(default)]
    pub firewalls: Vec<Firewall>,
    /// Links.
    #[serde(default)]
    pub links: Option<Links>,
}

// ---- droplets ----

/// The image part of a droplet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropletImage {
    /// Image slug, when it is a public image.
    #[serde(default)]
    pub slug: Option<String>,
    /// Image id.
    #[serde(default)]
    pub id: Option<u64>,
}

/// The region part of a droplet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropletRegion {
    /// Region slug.
    pub slug: String,
}

/// One IPv4 interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkV4 {
    /// Address.
    pub ip_address: String,
    /// `public` or `private`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A droplet's networks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Networks {
    /// IPv4 interfaces.
    #[serde(default)]
    pub v4: Vec<NetworkV4>,
}

/// A droplet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Droplet {
    /// Numeric id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// `new`, `active`, `off` or `archive`.
    pub status: String,
    /// Size slug.
    #[serde(default)]
    pub size_slug: String,
    /// Image.
    #[serde(default)]
    pub image: DropletImage,
    /// Region.
    #[serde(default)]
    pub region: DropletRegion,
    /// Networks.
    #[serde(default)]
    pub networks: Networks,
    /// Tags.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// VPC.
    #[serde(default)]
    pub vpc_uuid: String,
    /// Creation time.
    #[serde(default)]
    pub created_at: String,
}

impl Droplet {
    /// The first address of interfaces of `kind` (`public` / `private`), or empty.
    pub fn address(&self, kind: &str) -> String {
        self.networks.v4.iter().find(|n| n.kind == kind).map(|n| n.ip_address.clone()).unwrap_or_default()
    }
}

/// `POST /v2/droplets` (one droplet). `Debug` never shows the user data, which may carry
/// secrets.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DropletCreate {
    /// Name.
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// Image slug.
    pub image: String,
    /// SSH key fingerprints.
    pub ssh_keys: Vec<String>,
    /// Weekly droplet backups.
    pub backups: bool,
    /// IPv6.
    pub ipv6: bool,
    /// The monitoring agent.
    pub monitoring: bool,
    /// Tags (created if missing).
    pub tags: Vec<String>,
    /// Cloud-init user data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// VPC.
    pub vpc_uuid: String,
    /// Whether it gets a public address.
    pub public_networking: bool,
}

impl std::fmt::Debug for DropletCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropletCreate")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("size", &self.size)
            .field("image", &self.image)
            .field("tags", &self.tags)
            .field("user_data", &self.user_data.as_ref().map(|_| konstacks_core::secret::REDACTED))
            .field("vpc_uuid", &self.vpc_uuid)
            .field("public_networking", &self.public_networking)
            .finish_non_exhaustive()
    }
}

/// `{"droplet": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct DropletEnvelope {
    /// The droplet.
    pub droplet: Droplet,
}

/// A page of `GET /v2/droplets`.
#[derive(Debug, Clone, Deserialize)]
pub struct DropletList {
    /// Droplets.
    #[serde(default)]
    pub droplets: Vec<Droplet>,
    /// Links.
    #[serde(default)]
    pub links: Option<Links>,
}

/// `POST /v2/droplets/{id}/actions`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DropletAction {
    /// Hard power off.
    PowerOff,
    /// Power on.
    PowerOn,
    /// Change the size; `disk: false` keeps the disk so the resize can be undone.
    Resize {
        /// New size slug.
        size: String,
        /// Whether to grow the disk too (permanent).
        disk: bool,
    },
    /// Rename.
    Rename {
        /// New name.
        name: String,
    },
}

/// An action (droplet power, resize, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Id.
    pub id: u64,
    /// `in-progress`, `completed` or `errored`.
    pub status: String,
    /// Action type.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// `{"action": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionEnvelope {
    /// The action.
    pub action: Action,
}

// ---- SSH keys ----

/// An SSH key of the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// Id.
    #[serde(default)]
    pub id: u64,
    /// Fingerprint, as droplet creation takes it.
    #[serde(default)]
    pub fingerprint: String,
    /// The public key.
    pub public_key: String,
    /// Name.
    pub name: String,
}

/// `POST /v2/account/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshKeyCreate {
    /// Name.
    pub name: String,
    /// The public key.
    pub public_key: String,
}

/// `{"ssh_key": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct SshKeyEnvelope {
    /// The key.
    pub ssh_key: SshKey,
}

/// A page of `GET /v2/account/keys`.
#[derive(Debug, Clone, Deserialize)]
pub struct SshKeyList {
    /// Keys.
    #[serde(default)]
    pub ssh_keys: Vec<SshKey>,
    /// Links.
    #[serde(default)]
    pub links: Option<Links>,
}

// ---- databases ----

/// Connection details of a database cluster.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbConnection {
    /// Host.
    #[serde(default)]
    pub host: String,
    /// Port.
    #[serde(default)]
    pub port: u16,
    /// User.
    #[serde(default)]
    pub user: String,
    /// The user's password, which DigitalOcean generates (answers only; redacted in `Debug`).
    #[serde(default, skip_serializing)]
    pub password: Option<konstacks_core::secret::Secret<String>>,
    /// Whether TLS is required.
    #[serde(default)]
    pub ssl: bool,
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConnection").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

/// A trusted source of a database cluster (its "firewall").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbFirewallRule {
    /// Rule id (answers only).
    #[serde(default, skip_serializing)]
    pub uuid: String,
    /// `droplet`, `k8s`, `ip_addr`, `tag` or `app`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The droplet id, address, tag, ...
    pub value: String,
    /// Free text (Konstacks records which firewall the rule comes from).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A managed database cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseCluster {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// `pg`, `mysql`, `redis`, `valkey`, ...
    pub engine: String,
    /// Major version.
    #[serde(default)]
    pub version: String,
    /// Nodes (primary plus standbys).
    pub num_nodes: u32,
    /// Size slug.
    pub size: String,
    /// Region slug.
    pub region: String,
    /// `creating`, `online`, `resizing`, `migrating` or `forking`.
    #[serde(default)]
    pub status: String,
    /// VPC.
    #[serde(default)]
    pub private_network_uuid: String,
    /// Tags.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Public connection.
    #[serde(default)]
    pub connection: Option<DbConnection>,
    /// Connection inside the VPC.
    #[serde(default)]
    pub private_connection: Option<DbConnection>,
    /// Storage in MiB.
    #[serde(default)]
    pub storage_size_mib: Option<u64>,
    /// Trusted sources, when the answer includes them.
    #[serde(default)]
    pub rules: Option<Vec<DbFirewallRule>>,
    /// Project.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// `POST /v2/databases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseCreate {
    /// Name.
    pub name: String,
    /// Engine slug.
    pub engine: String,
    /// Major version.
    pub version: String,
    /// Nodes.
    pub num_nodes: u32,
    /// Size slug.
    pub size: String,
    /// Region slug.
    pub region: String,
    /// VPC.
    pub private_network_uuid: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Storage in MiB (not for caching engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_size_mib: Option<u64>,
    /// Project to put it in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Trusted sources from the start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<DbFirewallRule>,
}

/// `PUT /v2/databases/{id}/resize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseResize {
    /// Size slug.
    pub size: String,
    /// Nodes.
    pub num_nodes: u32,
    /// Storage in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_size_mib: Option<u64>,
}

/// `PUT /v2/databases/{id}/upgrade`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseUpgrade {
    /// New major version.
    pub version: String,
}

/// `GET` / `PUT /v2/databases/{id}/firewall`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseFirewall {
    /// Trusted sources.
    #[serde(default)]
    pub rules: Vec<DbFirewallRule>,
}

/// `{"database": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseEnvelope {
    /// The cluster.
    pub database: DatabaseCluster,
}

/// `GET /v2/databases` (not paginated).
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseList {
    /// Clusters.
    #[serde(default, deserialize_with = "null_as_default")]
    pub databases: Vec<DatabaseCluster>,
}

// ---- projects ----

/// A project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Purpose.
    #[serde(default)]
    pub purpose: String,
    /// `Development`, `Staging` or `Production`.
    #[serde(default)]
    pub environment: Option<String>,
    /// Whether it is the account's default project.
    #[serde(default)]
    pub is_default: bool,
}

/// `POST /v2/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectCreate {
    /// Name, at most 175 characters.
    pub name: String,
    /// Description.
    pub description: String,
    /// Purpose.
    pub purpose: String,
    /// Environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// `{"project": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectEnvelope {
    /// The project.
    pub project: Project,
}

/// A page of `GET /v2/projects`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectList {
    /// Projects.
    #[serde(default)]
    pub projects: Vec<Project>,
    /// Links.
    #[serde(default)]
    pub links: Option<Links>,
}

/// A resource of a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectResource {
    /// URN (`do:droplet:1`, `do:dbaas:<uuid>`).
    pub urn: String,
    /// Assignment status.
    #[serde(default)]
    pub status: Option<String>,
}

/// A page of `GET /v2/projects/{id}/resources`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectResourceList {
    /// Resources.
    #[serde(default)]
    pub resources: Vec<ProjectResource>,
    /// Links.
    #[serde(default)]
    pub links: Option<Links>,
}

/// `POST /v2/projects/{id}/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignResources {
    /// URNs.
    pub resources: Vec<String>,
}

/// A list answer: its items and its links.
pub trait Paged {
    /// The item type.
    type Item;
    /// Split into items and links.
    fn into_parts(self) -> (Vec<Self::Item>, Option<Links>);
}

macro_rules! paged {
    ($($list:ty => $item:ty, $field:ident;)*) => {$(
        impl Paged for $list {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, Option<Links>) {
                (self.$field, self.links)
            }
        }
    )*};
}

paged! {
    VpcList => Vpc, vpcs;
    TagList => Tag, tags;
    FirewallList => Firewall, firewalls;
    DropletList => Droplet, droplets;
    SshKeyList => SshKey, ssh_keys;
    ProjectList => Project, projects;
    ProjectResourceList => ProjectResource, resources;
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_with_their_type() {
        let v = serde_json::to_string(&DropletAction::Resize { size: "s-1vcpu-2gb".into(), disk: false });
        assert_eq!(v.ok().as_deref(), Some(r#"{"type":"resize","size":"s-1vcpu-2gb","disk":false}"#));
        let v = serde_json::to_string(&DropletAction::PowerOff);
        assert_eq!(v.ok().as_deref(), Some(r#"{"type":"power_off"}"#));
    }

    #[test]
    fn null_lists_read_as_empty() {
        let f: Result<Firewall, _> = serde_json::from_str(r#"{"id":"x","name":"n","tags":null,"droplet_ids":null}"#);
        assert!(f.is_ok_and(|f| f.tags.is_empty() && f.droplet_ids.is_empty()));
    }

    #[test]
    fn user_data_never_debug_printed() {
        let c = DropletCreate {
            name: "n".into(),
            region: "fra1".into(),
            size: "s".into(),
            image: "i".into(),
            ssh_keys: vec![],
            backups: false,
            ipv6: false,
            monitoring: true,
            tags: vec![],
            user_data: Some("PASSWORD=hunter2".into()),
            vpc_uuid: "v".into(),
            public_networking: true,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
