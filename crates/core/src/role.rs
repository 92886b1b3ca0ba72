//! Who may do what. Each API route names one role; tokens carry exactly one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The role an API key is issued for. Separation of duties: an agent cannot redeem
/// its own seals, an executor cannot decide, an admin cannot act as either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Executor,
    Auditor,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Agent,
        Role::Executor,
        Role::Auditor,
        Role::Approver,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Executor => "executor",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may call a route that requires `required`.
    /// Only admin reaches beyond its own routes, and only to read the audit trail.
    pub fn permits(self, required: Role) -> bool {
        self == required || (self == Role::Admin && required == Role::Auditor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected one of agent, executor, auditor, approver, admin")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_permit_only_their_own_routes_except_admin_reads() {
        for held in Role::ALL {
            for required in Role::ALL {
                let expected =
                    held == required || (held == Role::Admin && required == Role::Auditor);
                assert_eq!(held.permits(required), expected, "{held} on {required}");
            }
        }
    }

    #[test]
    fn parses_names() {
        assert_eq!("executor".parse::<Role>().expect("role"), Role::Executor);
        assert!("root".parse::<Role>().is_err());
    }
}
