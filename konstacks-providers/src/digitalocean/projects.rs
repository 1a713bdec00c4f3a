//! Projects: every droplet and database cluster of a stack is put in a DigitalOcean project
//! named after the stack (agencies keep one project per client). The project is created when
//! missing, and deleted again when the last resource of the stack left it and Konstacks created
//! it. DigitalOcean cannot put VPCs or cloud firewalls in projects; logical subnets are no
//! objects at all.

use konstacks_core::clock::OpContext;
use konstacks_core::error::ErrorKind;
use konstacks_core::provider::ProviderResult;
use konstacks_core::spec::Tags;
use reqwest::Method;

use super::types::{AssignResources, Project, ProjectCreate, ProjectEnvelope, ProjectList, ProjectResourceList};
use super::{stack_of, DigitalOcean};

/// Start of the description of projects Konstacks creates (and may therefore delete).
const MARK: &str = "Managed by Konstacks";

fn environment(tags: &Tags) -> Option<String> {
    match tags.get("konstacks:stage").map(String::as_str) {
        Some("dev") => Some("Development".into()),
        Some("staging") => Some("Staging".into()),
        Some("prod") => Some("Production".into()),
        _ => None,
    }
}

impl DigitalOcean {
    /// The id of the stack's project, created when missing.
    pub(crate) async fn project_for(&self, cx: &OpContext, tags: &Tags) -> ProviderResult<String> {
        let stack = stack_of(tags, cx);
        let mut cache = self.projects.lock().await;
        if let Some(id) = cache.get(&stack) {
            return Ok(id.clone());
        }
        let found = self.find_project(cx, &stack).await?;
        let id = match found {
            Some(p) => p.id,
            None => {
                let body = ProjectCreate {
                    name: stack.clone(),
                    description: format!("{MARK} (stack {stack})"),
                    purpose: "Operational / Developer tooling".into(),
                    environment: environment(tags),
                };
                let p: ProjectEnvelope = self
                    .client
                    .send(cx, Method::POST, "/v2/projects", &body)
                    .await
                    .map_err(|e| e.into_provider(format!("creating project `{stack}`")))?;
                p.project.id
            }
        };
        cache.insert(stack, id.clone());
        Ok(id)
    }

    pub(crate) async fn find_project(&self, cx: &OpContext, name: &str) -> ProviderResult<Option<Project>> {
        let all = self
            .client
            .list::<ProjectList>(cx, "/v2/projects", &[])
            .await
            .map_err(|e| e.into_provider("listing projects"))?;
        Ok(all.into_iter().find(|p| p.name == name))
    }

    /// Put `urn` in the stack's project.
    pub(crate) async fn assign_to_project(&self, cx: &OpContext, tags: &Tags, urn: &str) -> ProviderResult<()> {
        let body = AssignResources { resources: vec![urn.to_string()] };
        for attempt in 0..2 {
            let id = self.project_for(cx, tags).await?;
            let r: Result<ProjectResourceList, _> =
                self.client.send(cx, Method::POST, &format!("/v2/projects/{id}/resources"), &body).await;
            match r {
                Ok(_) => return Ok(()),
                // The project was deleted meanwhile (the stack emptied): find or create it again.
                Err(e) if e.is_not_found() && attempt == 0 => {
                    self.projects.lock().await.remove(&stack_of(tags, cx));
                }
                Err(e) => return Err(e.into_provider(format!("assigning {urn} to project `{}`", stack_of(tags, cx)))),
            }
        }
        Ok(())
    }

    /// Delete the stack's project if Konstacks created it and nothing is left in it; `true` when
    /// it was deleted. Failures are logged, never returned: the resource itself was deleted.
    pub(crate) async fn forget_project_if_empty(&self, cx: &OpContext, stack: &str) -> bool {
        let mut cache = self.projects.lock().await;
        let project = match self.find_project(cx, stack).await {
            Ok(Some(p)) if p.description.starts_with(MARK) && !p.is_default => p,
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(error = %e.full_chain(), stack, "digitalocean: could not look up the stack's project");
                return false;
            }
        };
        let path = format!("/v2/projects/{}/resources", project.id);
        match self.client.list::<ProjectResourceList>(cx, &path, &[]).await {
            Ok(r) if r.is_empty() => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(error = %e, stack, "digitalocean: could not list the project's resources");
                return false;
            }
        }
        match self.client.send_empty::<()>(cx, Method::DELETE, &format!("/v2/projects/{}", project.id), None).await {
            Ok(()) => {
                cache.remove(stack);
                true
            }
            Err(e) if e.is_not_found() || e.kind() == ErrorKind::Conflict => {
                cache.remove(stack);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, stack, "digitalocean: could not delete the empty project");
                false
            }
        }
    }
}
