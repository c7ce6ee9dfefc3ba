//! The bottom of the deployer: the names of the stack's resources and the tags that mark them
//! ours. Everything above may use it; it uses nothing of the crate.

use std::fmt;
use std::marker::PhantomData;

/// Tag keys every resource carries, set in the create call itself.
pub const TAG_STACK: &str = "movies-stack:stack";
pub const TAG_RESOURCE: &str = "movies-stack:resource";

/// The logical name of a resource in the stack (`vpc`, `subnet-1`, `usage-plan-standard`): also
/// the value of its `movies-stack:resource` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    base: &'static str,
    index: Option<u8>,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}-{i}", self.base),
            None => f.write_str(self.base),
        }
    }
}

/// A resource id whose type says what the resource hands to its dependents: `Id<LiveVpc>`.
pub struct Id<T> {
    name: Name,
    out: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    pub const fn new(base: &'static str) -> Self {
        Id { name: Name { base, index: None }, out: PhantomData }
    }

    /// `subnet-0`, `subnet-1`...
    pub const fn indexed(base: &'static str, index: u8) -> Self {
        Id { name: Name { base, index: Some(index) }, out: PhantomData }
    }

    pub const fn name(&self) -> Name {
        self.name
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Id<T> {}
impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl<T> Eq for Id<T> {}
impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.name)
    }
}
impl<T> fmt::Display for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.name.fmt(f)
    }
}

impl Name {
    /// A name that is not a resource of the graph: what progress lines about shared work are
    /// about (`lock`, `api-keys`...).
    pub const fn of(base: &'static str) -> Name {
        Name { base, index: None }
    }
}

impl<T> From<Id<T>> for Name {
    fn from(id: Id<T>) -> Name {
        id.name()
    }
}
