//! The envelopes a message travels in, one per kind of peer, learnt from
//! the first message a peer sends: rpyc 6's, rpyc 5's (and 4's), and rpyc
//! 6's with `bind_threads`, whose route names the threads at both ends.

use super::brine;

/// How messages are enveloped: rpyc 6.x sends a type byte, then brine
/// `(seq, args)`; rpyc 5.x (and 4.x) send brine `(msg, seq, args)`. Brine,
/// boxing, handlers and vinegar are the same in both (rpyc 5.3.1's
/// brine.py, vinegar.py, channel.py and consts.py match 6.0.2's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V6,
    V5,
    /// rpyc 6 with `bind_threads` on (the client's `RPYC_BIND_THREADS=true`
    /// or `config={"bind_threads": True}`): every message starts with a
    /// [`Route`], then is a 6.x message.
    V6Threads,
}

/// The envelope of rpyc 6's `bind_threads` (`Connection._send`,
/// `_serve_bound`): the id of the thread that sends the message and of the
/// peer's thread it is for, 0 when it is for no thread in particular, as
/// two big-endian 64-bit integers (`brine.I8I8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Route {
    pub from: u64,
    pub to: u64,
}

impl Route {
    pub const LEN: usize = 16;

    /// The route a [`Dialect::V6Threads`] payload starts with.
    pub fn of(payload: &[u8]) -> Option<Route> {
        let from = payload.get(..8)?.try_into().ok()?;
        let to = payload.get(8..Route::LEN)?.try_into().ok()?;
        Some(Route {
            from: u64::from_be_bytes(from),
            to: u64::from_be_bytes(to),
        })
    }
}

impl Dialect {
    /// Which dialect a peer speaks, from the start of a message it sends.
    /// A 6.x message starts with its type (1, 2 or 3); a 5.x one with the
    /// tag of a 3-tuple, which is none of those; one with threads bound
    /// with the 16 bytes of its route, then a 6.x message's type and the
    /// tag of its `(seq, args)` pair. (A route's first byte is the top of
    /// a thread id, the address of a thread's stack, below 2^48: 0, which
    /// starts no other dialect.) `None` for anything else.
    pub fn detect(payload: &[u8]) -> Option<Dialect> {
        match payload.first()? {
            1..=3 => Some(Dialect::V6),
            &brine::TAG_TUP3 => Some(Dialect::V5),
            _ => {
                let message = payload.get(Route::LEN..Route::LEN + 2)?;
                (matches!(message[0], 1..=3) && message[1] == brine::TAG_TUP2)
                    .then_some(Dialect::V6Threads)
            }
        }
    }

    /// How many bytes come before a message's type byte (or, in 5.x, its
    /// brine value).
    pub(super) fn envelope_len(self) -> usize {
        match self {
            Dialect::V6 | Dialect::V5 => 0,
            Dialect::V6Threads => Route::LEN,
        }
    }
}

/// Where the first bulk byte string of the message that `prefix` begins
/// has its data (see [`brine::find_bulk`]), in either dialect: what a
/// frame decoder needs to read it into memory of its own. Byte strings
/// shorter than `min` are not bulk.
pub fn locate_bulk(prefix: &[u8], min: usize) -> brine::Located {
    let brine_at = match Dialect::detect(prefix) {
        Some(Dialect::V5) => 0,
        Some(dialect) => dialect.envelope_len() + 1,
        // a route and the type byte after it may not all be here yet
        None if prefix.len() <= Route::LEN + 1 => return brine::Located::NeedMore,
        None => return brine::Located::Nowhere,
    };
    match brine::find_bulk(&prefix[brine_at..], min) {
        brine::Located::At { data, len } => brine::Located::At {
            data: data + brine_at,
            len,
        },
        other => other,
    }
}
