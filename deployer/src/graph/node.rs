//! The erased resource the executor holds: every [`Resource`] is a [`Node`], its live state and
//! changes behind `dyn Any`.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::resources::{CfnResource, Dep, FieldChange, Grant, Kind, KindChange, LiveStates, Name, Resource, Scope};

/// A resource's live state, erased.
pub type AnyLive = Arc<dyn Any + Send + Sync>;

/// A resource's typed changes, erased, with how they read.
pub struct Diff {
    typed: Box<dyn Any + Send + Sync>,
    pub shown: Vec<FieldChange>,
}

/// The erased resource the executor holds; every [`Resource`] is one.
#[async_trait]
pub trait Node: Send + Sync {
    fn name(&self) -> Name;
    fn kind(&self) -> Kind;
    fn grants(&self, scope: &Scope) -> Vec<Grant>;
    fn aws_name(&self) -> Option<String>;
    fn deps(&self) -> Vec<Dep>;
    fn create_rounds(&self) -> u32;
    fn delete_rounds(&self) -> u32;
    fn replaces_itself(&self) -> bool;
    fn wanted(&self) -> bool;
    async fn observe(&self, ctx: &Ctx) -> Result<Option<AnyLive>>;
    fn diff(&self, ctx: &Ctx, inputs: &LiveStates, live: &AnyLive) -> Result<Diff>;
    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<AnyLive>;
    async fn update(&self, ctx: &Ctx, inputs: &LiveStates, live: &AnyLive, diff: &Diff) -> Result<AnyLive>;
    async fn delete(&self, ctx: &Ctx, live: &AnyLive) -> Result<()>;
    async fn wait_ready(&self, ctx: &Ctx, live: &AnyLive) -> Result<()>;
    fn health(&self, live: &AnyLive) -> Vec<(&'static str, String)>;
    fn outputs(&self, ctx: &Ctx, live: &AnyLive) -> Vec<(&'static str, String)>;
    fn export(&self, ctx: &Ctx, live: &AnyLive) -> Result<Vec<CfnResource>>;
}

fn typed<R: Resource>(live: &AnyLive) -> Result<&R::Live> {
    live.downcast_ref::<R::Live>().ok_or_else(|| Error::other("internal: a resource's state has another type"))
}

#[async_trait]
impl<R: Resource> Node for R {
    fn name(&self) -> Name {
        self.id().name()
    }
    fn kind(&self) -> Kind {
        Resource::kind(self)
    }
    fn grants(&self, scope: &Scope) -> Vec<Grant> {
        Resource::grants(self, scope)
    }
    fn aws_name(&self) -> Option<String> {
        Resource::aws_name(self)
    }
    fn deps(&self) -> Vec<Dep> {
        Resource::deps(self)
    }
    fn create_rounds(&self) -> u32 {
        Resource::create_rounds(self)
    }
    fn delete_rounds(&self) -> u32 {
        Resource::delete_rounds(self)
    }
    fn replaces_itself(&self) -> bool {
        Resource::replaces_itself(self)
    }
    fn wanted(&self) -> bool {
        Resource::wanted(self)
    }
    async fn observe(&self, ctx: &Ctx) -> Result<Option<AnyLive>> {
        Ok(Resource::observe(self, ctx).await?.map(|l| Arc::new(l) as AnyLive))
    }
    fn diff(&self, ctx: &Ctx, inputs: &LiveStates, live: &AnyLive) -> Result<Diff> {
        let changes = Resource::diff(self, ctx, inputs, typed::<R>(live)?)?;
        let shown = changes.iter().map(KindChange::show).collect();
        Ok(Diff { typed: Box::new(changes), shown })
    }
    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<AnyLive> {
        Ok(Arc::new(Resource::create(self, ctx, inputs).await?))
    }
    async fn update(&self, ctx: &Ctx, inputs: &LiveStates, live: &AnyLive, diff: &Diff) -> Result<AnyLive> {
        let changes = diff
            .typed
            .downcast_ref::<Vec<R::Change>>()
            .ok_or_else(|| Error::other("internal: a resource's changes have another type"))?;
        Ok(Arc::new(Resource::update(self, ctx, inputs, typed::<R>(live)?, changes).await?))
    }
    async fn delete(&self, ctx: &Ctx, live: &AnyLive) -> Result<()> {
        Resource::delete(self, ctx, typed::<R>(live)?).await
    }
    async fn wait_ready(&self, ctx: &Ctx, live: &AnyLive) -> Result<()> {
        Resource::wait_ready(self, ctx, typed::<R>(live)?).await
    }
    fn health(&self, live: &AnyLive) -> Vec<(&'static str, String)> {
        typed::<R>(live).map(|l| Resource::health(self, l)).unwrap_or_default()
    }
    fn outputs(&self, ctx: &Ctx, live: &AnyLive) -> Vec<(&'static str, String)> {
        typed::<R>(live).map(|l| Resource::outputs(self, ctx, l)).unwrap_or_default()
    }
    fn export(&self, ctx: &Ctx, live: &AnyLive) -> Result<Vec<CfnResource>> {
        Ok(Resource::export(self, ctx, typed::<R>(live)?))
    }
}
