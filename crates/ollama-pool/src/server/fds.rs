//! The process's file-descriptor limit, and the client connections it leaves room for.
//!
//! Every client connection, upstream connection and store connection is a descriptor. The
//! default `server.max_connections` keeps a quarter of the limit (at least 256) for the others,
//! so that the gateway sheds clients before it cannot reach its upstreams.

use rlimit::Resource;

/// No default above this, whatever the limit (an unlimited `RLIMIT_NOFILE` reads as `u64::MAX`).
const MOST: u64 = 1 << 20;

/// Raises the soft descriptor limit to the hard one when it is lower (logged), and returns the
/// soft limit in force; `None` where it cannot be read.
pub fn raise_limit() -> Option<u64> {
    let (soft, hard) = Resource::NOFILE.get().ok()?;
    if soft >= hard {
        return Some(soft);
    }
    match rlimit::increase_nofile_limit(hard) {
        Ok(raised) => {
            tracing::info!(from = soft, to = raised, "raised the file-descriptor limit to its hard limit");
            Some(raised)
        }
        Err(e) => {
            tracing::warn!(error = %e, limit = soft, "could not raise the file-descriptor limit");
            Some(soft)
        }
    }
}

/// The client connections a descriptor limit leaves room for: the limit less a quarter of it
/// (at least 256), and never less than half of it.
pub fn default_max_connections(limit: u64) -> usize {
    let limit = limit.min(MOST);
    let headroom = (limit / 4).max(256);
    let max = limit.saturating_sub(headroom).max(limit / 2).max(1);
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// `configured`, or the default for the limit when it is 0; a warning when the limit is lower
/// than what is configured (the gateway would run out of descriptors before it sheds).
pub fn max_connections(configured: usize) -> usize {
    let limit = raise_limit();
    match (configured, limit) {
        (0, Some(limit)) => default_max_connections(limit),
        (0, None) => default_max_connections(1024),
        (configured, Some(limit)) => {
            if configured as u64 >= limit {
                tracing::warn!(
                    max_connections = configured,
                    file_descriptor_limit = limit,
                    "server.max_connections is not below the file-descriptor limit: descriptors run out before \
                     connections are shed"
                );
            }
            configured
        }
        (configured, None) => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::default_max_connections;

    #[test]
    fn the_default_leaves_a_quarter_of_the_descriptors_and_at_least_256() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(65_536), 49_152);
        assert_eq!(default_max_connections(400), 200, "never less than half");
        assert_eq!(default_max_connections(64), 32);
        assert_eq!(default_max_connections(u64::MAX), 786_432);
    }
}
