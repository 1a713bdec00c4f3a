//! Pure translation pieces of the load balancer: physical names of target groups, the internal
//! tags, and the mapping between portable values and ELBv2 values (schemes, TLS policies,
//! health states, actions, rule conditions). No call to AWS here.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, Matcher, PathPatternConditionConfig, ProtocolEnum,
    RedirectActionConfig, RedirectActionStatusCodeEnum, Rule, RuleCondition, Tag, TargetHealthStateEnum,
};
use konstacks_core::kind::fronts::ReleasePolicy;
use konstacks_core::provider::TargetHealthState;
use konstacks_core::spec::{HealthProtocol, LoadBalancerSpec, RouteSpec, TlsPolicy};

use crate::aws::digest;

/// Tag of a target group: the name of its group in the spec.
pub(super) const TAG_GROUP: &str = "konstacks:aws:group";
/// Tag of a target group: the name of its load balancer.
pub(super) const TAG_LB: &str = "konstacks:aws:lb";
/// Tag of a target group: its release policy (`surge/unavailable/within`), engine-side data.
pub(super) const TAG_RELEASE: &str = "konstacks:aws:release";
/// Tag of a load balancer: the TLS policy asked for (kept when no HTTPS listener exists).
pub(super) const TAG_TLS: &str = "konstacks:aws:tls";
/// Tag of a load balancer: the cost assumption (no effect on AWS).
pub(super) const TAG_GB: &str = "konstacks:aws:gb";
/// Internal tags written on a load balancer.
pub(super) const LB_INTERNAL_TAGS: usize = 2;
/// Longest name AWS gives a load balancer or a target group.
pub(super) const MAX_ELB_NAME: usize = 32;

/// The name prefix shared by every target group of the load balancer `lb_name`: it lets a read
/// find them with one listing, whether or not a listener uses them yet.
pub(super) fn group_prefix(lb_name: &str) -> String {
    // The low digits of the digest: a change in the last byte of the input reaches them.
    let d = digest(&["lb", lb_name]);
    format!("ks{}-", &d[d.len() - 8..])
}

/// The physical name of a target group: the load balancer's prefix, the group name shortened,
/// and a digest of (load balancer, group, port), so a new port gets a new group. At most 32
/// characters, letters, digits and `-`, never ending in `-`.
pub fn group_name(lb_name: &str, group: &str, port: u16) -> String {
    let mut middle: String =
        group.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(14).collect();
    while middle.ends_with('-') {
        middle.pop();
    }
    let d = digest(&[lb_name, group, &port.to_string()]);
    let d = &d[d.len() - 6..];
    let name = if middle.is_empty() {
        format!("{}{d}", group_prefix(lb_name))
    } else {
        format!("{}{middle}-{d}", group_prefix(lb_name))
    };
    name.chars().take(MAX_ELB_NAME).collect()
}

/// The load balancer name inside its ARN (`...:loadbalancer/app/<name>/<id>`).
pub(super) fn lb_name_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":loadbalancer/app/")?.1;
    rest.split('/').next().filter(|n| !n.is_empty())
}

pub(super) fn elb_tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// The ELBv2 name of a TLS policy.
pub(super) fn ssl_policy(p: TlsPolicy) -> &'static str {
    match p {
        TlsPolicy::Tls13 => "ELBSecurityPolicy-TLS13-1-3-2021-06",
        _ => "ELBSecurityPolicy-TLS13-1-2-2021-06",
    }
}

/// The ELBv2 policy a spec asks for: the named one, or the one for its TLS policy.
pub(super) fn policy_of(spec: &LoadBalancerSpec) -> &str {
    spec.security_policy.as_deref().unwrap_or(ssl_policy(spec.tls_policy))
}

/// The TLS policy of an ELBv2 policy name (policies that admit TLS 1.2 count as `Tls12`).
pub(super) fn tls_of_policy(name: &str) -> TlsPolicy {
    if name.contains("TLS13-1-3") {
        TlsPolicy::Tls13
    } else {
        TlsPolicy::Tls12
    }
}

pub(super) fn tls_word(p: TlsPolicy) -> &'static str {
    match p {
        TlsPolicy::Tls13 => "tls13",
        _ => "tls12",
    }
}

pub(super) fn tls_of_word(w: &str) -> TlsPolicy {
    if w == "tls13" {
        TlsPolicy::Tls13
    } else {
        TlsPolicy::Tls12
    }
}

pub(super) fn release_word(r: &ReleasePolicy) -> String {
    format!("{}/{}/{}", r.max_surge, r.max_unavailable, r.healthy_within_s)
}

pub(super) fn release_of_word(w: &str) -> ReleasePolicy {
    let n: Vec<u32> = w.split('/').filter_map(|p| p.parse().ok()).collect();
    match n.as_slice() {
        [s, u, h] => ReleasePolicy { max_surge: *s, max_unavailable: *u, healthy_within_s: *h },
        _ => ReleasePolicy::default(),
    }
}

/// The health check protocol of an application load balancer's target group, or `None` for
/// one it cannot probe with (TCP).
pub(super) fn health_protocol(p: HealthProtocol) -> Option<ProtocolEnum> {
    match p {
        HealthProtocol::Http => Some(ProtocolEnum::Http),
        HealthProtocol::Https => Some(ProtocolEnum::Https),
        _ => None,
    }
}

pub(super) fn health_protocol_of(p: Option<&ProtocolEnum>) -> HealthProtocol {
    match p {
        Some(ProtocolEnum::Https) => HealthProtocol::Https,
        Some(ProtocolEnum::Tcp) => HealthProtocol::Tcp,
        _ => HealthProtocol::Http,
    }
}

pub(super) fn matcher(codes: Option<&str>) -> Matcher {
    Matcher::builder().http_code(codes.unwrap_or("200")).build()
}

/// A portable health state and ELBv2's word for it (`unused` is a target not registered).
pub(super) fn health_state(s: Option<&TargetHealthStateEnum>) -> (TargetHealthState, &'static str) {
    match s {
        Some(TargetHealthStateEnum::Initial) => (TargetHealthState::Initial, "initial"),
        Some(TargetHealthStateEnum::Healthy) => (TargetHealthState::Healthy, "healthy"),
        Some(TargetHealthStateEnum::Unhealthy) | Some(TargetHealthStateEnum::UnhealthyDraining) => {
            (TargetHealthState::Unhealthy, "unhealthy")
        }
        Some(TargetHealthStateEnum::Draining) => (TargetHealthState::Draining, "draining"),
        Some(TargetHealthStateEnum::Unused) => (TargetHealthState::Unavailable, "unused"),
        _ => (TargetHealthState::Unavailable, "unavailable"),
    }
}

/// Forward everything to the target group `arn`.
pub(super) fn forward(arn: &str) -> Action {
    Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(arn).build()
}

/// Answer every request with a permanent redirect to HTTPS on `port`, keeping host, path and query.
pub(super) fn redirect(port: u16) -> Action {
    let cfg = RedirectActionConfig::builder()
        .protocol("HTTPS")
        .port(port.to_string())
        .status_code(RedirectActionStatusCodeEnum::Http301)
        .build();
    Action::builder().r#type(ActionTypeEnum::Redirect).redirect_config(cfg).build()
}

/// The HTTPS port a redirect action sends to, if the action is one.
pub(super) fn redirect_port(actions: &[Action]) -> Option<u16> {
    let a = actions.iter().find(|a| a.r#type() == Some(&ActionTypeEnum::Redirect))?;
    a.redirect_config()?.port()?.parse().ok()
}

/// The target group ARN an action list forwards to (the single target of a forward action).
pub(super) fn forward_arn(actions: &[Action]) -> Option<&str> {
    let a = actions.iter().find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))?;
    a.target_group_arn().or_else(|| a.forward_config()?.target_groups().first().and_then(|t| t.target_group_arn()))
}

/// The conditions of a route: host header and path pattern (`prefix*`).
pub(super) fn conditions(r: &RouteSpec) -> Vec<RuleCondition> {
    let mut out = Vec::new();
    if let Some(h) = &r.host {
        out.push(
            RuleCondition::builder()
                .field("host-header")
                .host_header_config(HostHeaderConditionConfig::builder().values(h).build())
                .build(),
        );
    }
    let path = r.path_prefix.as_ref().map_or_else(|| "/*".to_string(), |p| format!("{p}*"));
    if r.path_prefix.is_some() || r.host.is_none() {
        out.push(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(PathPatternConditionConfig::builder().values(path).build())
                .build(),
        );
    }
    out
}

fn condition_values(c: &RuleCondition) -> Vec<String> {
    let from_cfg: Vec<String> = match c.field() {
        Some("host-header") => c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default(),
        Some("path-pattern") => c.path_pattern_config().map(|p| p.values().to_vec()).unwrap_or_default(),
        _ => Vec::new(),
    };
    if from_cfg.is_empty() {
        c.values().to_vec()
    } else {
        from_cfg
    }
}

/// A rule as Konstacks writes it: (priority, host, path prefix, target group ARN).
pub(super) type RuleKey = (u32, Option<String>, Option<String>, String);

/// A rule read back; `None` for the default rule and for rules Konstacks does not write.
pub(super) fn route_of(r: &Rule) -> Option<RuleKey> {
    if r.is_default() == Some(true) {
        return None;
    }
    let priority: u32 = r.priority()?.parse().ok()?;
    let (mut host, mut path) = (None, None);
    for c in r.conditions() {
        let v = condition_values(c).into_iter().next();
        match c.field() {
            Some("host-header") => host = v,
            Some("path-pattern") => path = v,
            _ => return None,
        }
    }
    let path_prefix = match path.as_deref() {
        None | Some("/*") if host.is_none() => None,
        None => None,
        Some(p) => Some(p.strip_suffix('*').unwrap_or(p).to_string()),
    };
    let arn = forward_arn(r.actions())?.to_string();
    Some((priority, host, path_prefix, arn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_short_stable_and_distinct() {
        let a = group_name("shop-prod-web-lb", "app", 8080);
        assert_eq!(a, group_name("shop-prod-web-lb", "app", 8080));
        assert!(a.len() <= MAX_ELB_NAME && a.starts_with(&group_prefix("shop-prod-web-lb")));
        assert_ne!(a, group_name("shop-prod-web-lb", "app", 8081));
        assert_ne!(a, group_name("shop-prod-web-lb-1", "app", 8080));
        assert_ne!(group_prefix("shop-lb-1"), group_prefix("shop-lb-2"));
        let long = group_name("x", "a-very-long-group-name-indeed-much-too-long", 80);
        assert!(long.len() <= MAX_ELB_NAME && !long.ends_with('-'));
    }

    #[test]
    fn arns_give_the_name() {
        let arn = "arn:aws:elasticloadbalancing:eu-central-1:123:loadbalancer/app/shop-lb/50dc6c495c0c9188";
        assert_eq!(lb_name_of_arn(arn), Some("shop-lb"));
        assert_eq!(lb_name_of_arn("nonsense"), None);
    }

    #[test]
    fn routes_round_trip() {
        let r = RouteSpec {
            priority: 3,
            host: Some("api.example.com".into()),
            path_prefix: Some("/v1".into()),
            target_group: "api".into(),
        };
        let rule = Rule::builder()
            .priority("3")
            .set_conditions(Some(conditions(&r)))
            .actions(forward("arn:tg"))
            .is_default(false)
            .build();
        assert_eq!(
            route_of(&rule),
            Some((3, Some("api.example.com".into()), Some("/v1".into()), "arn:tg".to_string()))
        );
        let any = RouteSpec { host: None, path_prefix: None, ..r };
        let rule = Rule::builder().priority("1").set_conditions(Some(conditions(&any))).actions(forward("t")).build();
        assert_eq!(route_of(&rule), Some((1, None, None, "t".to_string())));
    }

    #[test]
    fn states_and_policies_map() {
        assert_eq!(health_state(Some(&TargetHealthStateEnum::Initial)).0, TargetHealthState::Initial);
        assert_eq!(health_state(Some(&TargetHealthStateEnum::Draining)).1, "draining");
        assert_eq!(tls_of_policy(ssl_policy(TlsPolicy::Tls13)), TlsPolicy::Tls13);
        assert_eq!(tls_of_policy(ssl_policy(TlsPolicy::Tls12)), TlsPolicy::Tls12);
        assert_eq!(release_of_word(&release_word(&ReleasePolicy::default())), ReleasePolicy::default());
        assert_eq!(redirect_port(&[redirect(443)]), Some(443));
    }
}
