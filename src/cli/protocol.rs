//! `--protocol-config KEY=VALUE`: rpyc 6.0.2's protocol configuration
//! (`rpyc/core/protocol.py`, `DEFAULT_CONFIG`) as both servers take it.
//! Every key of it is known here: what the server applies itself (the
//! exceptions' rules and the callback timeout, on both binaries), what
//! only a hosted service's attribute rules use (`rpyc-serve`; the classic
//! service allows everything, as rpyc's `SlaveService` sets for itself),
//! and what cannot apply, refused by name with the reason.

use std::time::Duration;

use super::{parse_positive_seconds, CliError};

/// Who reads a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// The server applies it, for any service.
    Server,
    /// A hosted service's rules (rpyc-serve's object space applies it).
    Hosted,
    /// Refused, for this reason.
    Refused(&'static str),
}

const SLAVE_SERVICE: &str = "the classic service sets it itself, as rpyc's SlaveService does \
     (every attribute, pickling and custom exceptions allowed); it applies to rpyc-serve";

/// Every key of rpyc 6.0.2's `DEFAULT_CONFIG`.
const KEYS: &[(&str, Use)] = &[
    ("allow_safe_attrs", Use::Hosted),
    ("allow_exposed_attrs", Use::Hosted),
    ("allow_public_attrs", Use::Hosted),
    ("allow_all_attrs", Use::Hosted),
    ("safe_attrs", Use::Hosted),
    ("exposed_prefix", Use::Hosted),
    ("allow_getattr", Use::Hosted),
    ("allow_setattr", Use::Hosted),
    ("allow_delattr", Use::Hosted),
    ("allow_pickle", Use::Hosted),
    ("include_local_traceback", Use::Server),
    ("include_local_version", Use::Server),
    ("log_exceptions", Use::Server),
    ("propagate_SystemExit_locally", Use::Server),
    ("propagate_KeyboardInterrupt_locally", Use::Server),
    ("sync_request_timeout", Use::Server),
    ("instantiate_custom_exceptions", Use::Hosted),
    ("import_custom_exceptions", Use::Hosted),
    (
        "instantiate_oldstyle_exceptions",
        Use::Refused("Python 3 has no old-style exceptions: rpyc ignores it"),
    ),
    (
        "bind_threads",
        Use::Refused(
            "learnt from each client's first message, so that clients with it on and off \
             share a port",
        ),
    ),
    (
        "credentials",
        Use::Refused("set for each connection, by --ssl-cafile's client certificate"),
    ),
    (
        "endpoints",
        Use::Refused("set for each connection from its socket"),
    ),
    ("connid", Use::Refused("set for each connection")),
    (
        "logger",
        Use::Refused("a Python object: use --logfile, --syslog and --log-level"),
    ),
    (
        "before_closed",
        Use::Refused("a Python callable: a hosted service has on_disconnect"),
    ),
    (
        "close_catchall",
        Use::Refused(
            "only changes what rpyc's own Connection.close() raises; rpycd's connections close \
             without raising",
        ),
    ),
];

/// What the server itself takes from the protocol configuration, with
/// rpyc's defaults for what is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerKeys {
    pub include_local_traceback: bool,
    pub include_local_version: bool,
    pub log_exceptions: bool,
    pub propagate_system_exit: bool,
    pub propagate_keyboard_interrupt: bool,
    /// `Some(None)`: wait forever (`None` in rpyc); `None`: not given.
    pub sync_request_timeout: Option<Option<Duration>>,
}

impl Default for ServerKeys {
    fn default() -> ServerKeys {
        ServerKeys {
            include_local_traceback: true,
            include_local_version: true,
            log_exceptions: true,
            propagate_system_exit: false,
            propagate_keyboard_interrupt: true,
            sync_request_timeout: None,
        }
    }
}

/// Reads `--protocol-config` items (`hosted`: for rpyc-serve, which
/// takes the attribute rules too); the last of a key wins, as in a dict.
pub fn server_keys(items: &[(String, String)], hosted: bool) -> Result<ServerKeys, CliError> {
    let mut keys = ServerKeys::default();
    for (key, value) in items {
        let bad = |reason: String| CliError::BadProtocolConfig {
            key: key.clone(),
            reason,
        };
        let known = KEYS.iter().find(|(name, _)| name == key);
        match known.map(|(_, used)| *used) {
            None => {
                let taken: Vec<&str> = KEYS
                    .iter()
                    .filter(|(_, used)| *used == Use::Server || (hosted && *used == Use::Hosted))
                    .map(|(name, _)| *name)
                    .collect();
                return Err(bad(format!(
                    "not a key of rpyc 6.0.2's protocol configuration (these are taken: {})",
                    taken.join(", ")
                )));
            }
            Some(Use::Refused(why)) => return Err(bad(why.to_owned())),
            Some(Use::Hosted) if !hosted => return Err(bad(SLAVE_SERVICE.to_owned())),
            Some(Use::Hosted) => {}
            Some(Use::Server) => {
                let flag = || {
                    python_bool(value).ok_or_else(|| bad(format!("{value} is not True or False")))
                };
                match key.as_str() {
                    "include_local_traceback" => keys.include_local_traceback = flag()?,
                    "include_local_version" => keys.include_local_version = flag()?,
                    "log_exceptions" => keys.log_exceptions = flag()?,
                    "propagate_SystemExit_locally" => keys.propagate_system_exit = flag()?,
                    "propagate_KeyboardInterrupt_locally" => {
                        keys.propagate_keyboard_interrupt = flag()?
                    }
                    _ => {
                        keys.sync_request_timeout = Some(if value == "None" {
                            None
                        } else {
                            Some(parse_positive_seconds(value).map_err(bad)?)
                        })
                    }
                }
            }
        }
    }
    Ok(keys)
}

/// A Python literal rpyc would take as a flag.
fn python_bool(value: &str) -> Option<bool> {
    match value {
        "True" | "1" => Some(true),
        "False" | "0" => Some(false),
        _ => None,
    }
}

/// One `--protocol-config` item: `KEY=PYTHON_LITERAL`.
pub(crate) fn parse_item(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("'{key}' is not a protocol config key"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_of_rpyc_6_0_2_is_known_once() {
        // DEFAULT_CONFIG of rpyc 6.0.2, in its order
        let rpyc = [
            "allow_safe_attrs",
            "allow_exposed_attrs",
            "allow_public_attrs",
            "allow_all_attrs",
            "safe_attrs",
            "exposed_prefix",
            "allow_getattr",
            "allow_setattr",
            "allow_delattr",
            "include_local_traceback",
            "include_local_version",
            "instantiate_custom_exceptions",
            "import_custom_exceptions",
            "instantiate_oldstyle_exceptions",
            "propagate_SystemExit_locally",
            "propagate_KeyboardInterrupt_locally",
            "log_exceptions",
            "allow_pickle",
            "connid",
            "credentials",
            "endpoints",
            "logger",
            "sync_request_timeout",
            "before_closed",
            "close_catchall",
            "bind_threads",
        ];
        let mut ours: Vec<_> = KEYS.iter().map(|(k, _)| *k).collect();
        let mut theirs = rpyc.to_vec();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn server_keys_with_rpyc_defaults() {
        assert_eq!(server_keys(&[], false).unwrap(), ServerKeys::default());
        let keys = server_keys(
            &items(&[
                ("include_local_traceback", "False"),
                ("include_local_version", "0"),
                ("log_exceptions", "False"),
                ("propagate_SystemExit_locally", "True"),
                ("propagate_KeyboardInterrupt_locally", "False"),
                ("sync_request_timeout", "None"),
            ]),
            false,
        )
        .unwrap();
        assert!(!keys.include_local_traceback && !keys.include_local_version);
        assert!(!keys.log_exceptions && keys.propagate_system_exit);
        assert!(!keys.propagate_keyboard_interrupt);
        assert_eq!(keys.sync_request_timeout, Some(None));
    }

    #[test]
    fn refused_keys_say_why() {
        for (key, hosted, why) in [
            ("allow_public_attrs", false, "SlaveService"),
            ("bind_threads", true, "first message"),
            ("credentials", true, "--ssl-cafile"),
            ("logger", false, "--log-level"),
            ("no_such_key", true, "not a key"),
        ] {
            let error = server_keys(&items(&[(key, "True")]), hosted).unwrap_err();
            let text = error.to_string();
            assert!(text.contains(key) && text.contains(why), "{text}");
        }
        assert!(server_keys(&items(&[("allow_public_attrs", "True")]), true).is_ok());
        let error = server_keys(&items(&[("log_exceptions", "yes")]), false).unwrap_err();
        assert!(error.to_string().contains("not True or False"));
    }
}
