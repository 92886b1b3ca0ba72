//! The cross-references `sealgate verify` checks between entries: every seal is
//! granted by an approved decision (or an approved approval), every redemption names
//! a seal granted earlier by the decision it names, no seal is granted or redeemed
//! twice, and every approval answers an earlier decision pending approval, by its
//! index and its id, once. Owns reading those members out of an entry's bytes and
//! resolving the grants and redemptions they claim; hashing, the tree and storage
//! belong to the caller.
//!
//! Besides hashing and SQLite, reading entries is most of verify's work, so the
//! common case takes a scan ([`scan`]) that reads only the top-level members the
//! checks need from an entry shaped as sealgate writes it (no whitespace; no escapes
//! or non-ASCII in those members or in the keys) and skips everything else while
//! checking its JSON syntax. Whatever it does not handle goes to serde_json, which
//! defines the answer: on every entry the scan accepts, serde_json reads the same
//! members (the tests hold the two to that), so the check's outcome does not depend
//! on which one ran.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::ops::Range;

use sealgate_core::canonical;
use sealgate_core::entry::{Entry, Status};
use serde_json::Value;

use super::Tamper;

/// The members of an entry the cross-references need, borrowed where possible.
/// serde_json fills it for any JSON; [`scan`] for the common shape.
#[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
struct Refs<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    approved: Option<bool>,
    #[serde(borrow)]
    seal: Option<Grant<'a>>,
    #[serde(borrow)]
    seal_id: Option<Cow<'a, str>>,
    decision_index: Option<u64>,
    #[serde(borrow)]
    decision_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    approver: Option<Cow<'a, str>>,
}

#[derive(Debug, PartialEq, Eq, serde::Deserialize)]
struct Grant<'a> {
    #[serde(borrow)]
    seal_id: Cow<'a, str>,
}

/// What one entry asks of the seals.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// Nothing: a decision or approval without a seal, a policy activation, a key rotation.
    None,
    /// Grants the seal, for the decision at `decision`.
    Grant { seal: Range<usize>, decision: u64 },
    /// Redeems the seal, naming the decision at `decision`.
    Redeem { seal: Range<usize>, decision: u64 },
}

impl Claim {
    /// Where the seal id is kept, for a grant or a redemption.
    fn seal(&self) -> Option<&Range<usize>> {
        match self {
            Claim::None => None,
            Claim::Grant { seal, .. } | Claim::Redeem { seal, .. } => Some(seal),
        }
    }
}

/// A grant or a redemption, with the entry it is in and a keyed hash of its seal id.
struct Recorded {
    index: u64,
    key: u64,
    claim: Claim,
}

/// A seal as its claims so far describe it.
struct Seal {
    granted_by: u64,
    decision: u64,
    redeemed_by: Option<u64>,
}

/// How many seals were granted and redeemed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Totals {
    pub(super) seals: u64,
    pub(super) redemptions: u64,
}

/// The claims read so far, in index order, resolved when asked: sorting them by seal
/// keeps each seal's claims together, where a table of seals updated entry by entry
/// would touch memory at random once it outgrows the cache (800,000 seals for a
/// million entries cost more than the rest of the check but hashing).
#[derive(Default)]
pub(super) struct CrossRefs {
    claims: Vec<Recorded>,
    /// The seal ids the claims name, end to end.
    ids: String,
    /// The first entry whose own members are wrong; nothing after it is read.
    problem: Option<(u64, Tamper)>,
    keys: RandomState,
    /// Index and decision id of the decisions pending approval, ascending by index.
    pending: Vec<(u64, Box<str>)>,
    /// Every approval, ascending by index.
    resolutions: Vec<Resolution>,
    /// (index, version) of every policy activation, ascending by index.
    activations: Vec<(u64, Box<str>)>,
}

/// An approval entry's answer.
struct Resolution {
    index: u64,
    decision: u64,
    decision_id: Box<str>,
    approved: bool,
    approver: Box<str>,
}

impl CrossRefs {
    /// Room for the claims of a ledger of `entries`, reserved up front: growing by
    /// doubling copies the claims and zeroes twice the memory they end up in. Past a
    /// few million entries it grows as usual, so a huge ledger reserves no more.
    pub(super) fn with_room(entries: u64) -> CrossRefs {
        let claims = entries.min(1 << 22) as usize;
        CrossRefs {
            claims: Vec::with_capacity(claims),
            ids: String::with_capacity(claims * 24),
            ..CrossRefs::default()
        }
    }

    /// Reads entry `index`'s claim. `strict` parses the whole entry as a sealgate
    /// [`Entry`] and requires RFC 8785 canonical form.
    pub(super) fn read(&mut self, index: u64, bytes: &[u8], strict: bool) {
        if self.problem.is_some() {
            return;
        }
        let claim = if strict {
            self.read_strict(index, bytes)
        } else {
            match scan(bytes) {
                Some(refs) => self.claim(index, &refs),
                None => match serde_json::from_slice::<Refs<'_>>(bytes) {
                    Ok(refs) => self.claim(index, &refs),
                    Err(e) => Err(Tamper(format!("entry {index}: not a sealgate entry ({e})"))),
                },
            }
        };
        match claim {
            Ok(claim) => {
                if let Some(seal) = claim.seal() {
                    let key = self.keys.hash_one(&self.ids[seal.clone()]);
                    self.claims.push(Recorded { index, key, claim });
                }
            }
            Err(t) => self.problem = Some((index, t)),
        }
    }

    /// [`CrossRefs::check_on`] on one thread, which the tests hold to give what two
    /// and three give.
    #[cfg(test)]
    fn check(&self, before: u64) -> Result<Totals, Tamper> {
        let one = self.check_on(before, 1);
        for threads in [2, 3] {
            assert_eq!(self.check_on(before, threads), one, "{threads} threads");
        }
        one
    }

    /// The outcome of applying the claims of the entries below `before` one by one
    /// in index order: the problem at the lowest index, or how many seals were
    /// granted and redeemed. The claims of one seal share a key, so `threads` threads
    /// share the work by key ranges that have nothing in common.
    pub(super) fn check_on(&self, before: u64, threads: usize) -> Result<Totals, Tamper> {
        let claims = &self.claims[..self.claims.partition_point(|c| c.index < before)];
        let parts = threads.max(1);
        let outcomes: Vec<(Option<(u64, Tamper)>, Totals)> = if parts == 1 {
            vec![self.check_part(claims, 0, 1)]
        } else {
            std::thread::scope(|s| {
                let workers: Vec<_> = (1..parts)
                    .map(|part| s.spawn(move || self.check_part(claims, part, parts)))
                    .collect();
                let mut outcomes = vec![self.check_part(claims, 0, parts)];
                for worker in workers {
                    // A panic in a part is a bug: it is the check's panic too.
                    outcomes.push(
                        worker
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    );
                }
                outcomes
            })
        };
        let mut first = self
            .problem
            .as_ref()
            .filter(|(index, _)| *index < before)
            .cloned();
        let mut totals = Totals::default();
        let mut note = |found: Option<(u64, Tamper)>| {
            if let Some((index, t)) = found {
                if first.as_ref().is_none_or(|(f, _)| index < *f) {
                    first = Some((index, t));
                }
            }
        };
        for (found, part) in outcomes {
            note(found);
            totals.seals += part.seals;
            totals.redemptions += part.redemptions;
        }
        note(self.resolution_problem(before));
        first.map_or(Ok(totals), |(_, t)| Err(t))
    }

    /// Applies the claims whose key falls in part `part` of `parts` equal ranges:
    /// the lowest problem found, and the seals granted and redeemed.
    fn check_part(
        &self,
        claims: &[Recorded],
        part: usize,
        parts: usize,
    ) -> (Option<(u64, Tamper)>, Totals) {
        let part_of = |key: u64| ((u128::from(key) * parts as u128) >> 64) as usize;
        // Keys are uniform: each part gets about its share (room is made for a little
        // more, so the vector is not grown, copied and zeroed again mid-way).
        let share = claims.len() / parts;
        let mut order: Vec<(u64, usize)> = Vec::with_capacity(if parts == 1 {
            share
        } else {
            share + share / 16
        });
        order.extend(
            claims
                .iter()
                .enumerate()
                .filter(|(_, c)| part_of(c.key) == part)
                .map(|(at, c)| (c.key, at)),
        );
        // Each seal's claims together, in index order.
        order.sort_unstable();
        let mut first: Option<(u64, Tamper)> = None;
        let mut totals = Totals::default();
        let mut seals: Vec<(Range<usize>, Seal)> = Vec::new();
        for same_key in order.chunk_by(|a, b| a.0 == b.0) {
            // One seal, unless two seal ids share a key.
            seals.clear();
            for &(_, at) in same_key {
                let Recorded { index, claim, .. } = &claims[at];
                if let Err(t) = self.apply(*index, claim, &mut seals, &mut totals) {
                    if first.as_ref().is_none_or(|(f, _)| index < f) {
                        first = Some((*index, t));
                    }
                    break;
                }
            }
        }
        (first, totals)
    }

    /// The lowest approval below `before` that answers something other than an earlier
    /// decision pending approval, or answers one a second time.
    fn resolution_problem(&self, before: u64) -> Option<(u64, Tamper)> {
        let resolutions =
            &self.resolutions[..self.resolutions.partition_point(|r| r.index < before)];
        let mut lowest: Option<(u64, Tamper)> = None;
        let mut note = |index: u64, what: String| {
            if lowest.as_ref().is_none_or(|(l, _)| index < *l) {
                lowest = Some((index, Tamper(format!("entry {index}: {what}"))));
            }
        };
        for r in resolutions {
            let (index, decision, id) = (r.index, r.decision, &r.decision_id);
            let pending = match self.pending.binary_search_by_key(&decision, |p| p.0) {
                Ok(at) if decision < index => &self.pending[at].1,
                _ => {
                    note(
                        index,
                        format!("answers entry {decision}, which is not an earlier decision pending approval"),
                    );
                    continue;
                }
            };
            if pending != id {
                note(
                    index,
                    format!("answers entry {decision} as decision {id:?}, but that entry is decision {pending:?}"),
                );
            }
        }
        let mut by_decision: Vec<(u64, u64)> =
            resolutions.iter().map(|r| (r.decision, r.index)).collect();
        by_decision.sort_unstable();
        for pair in by_decision.windows(2) {
            let ((decision, first), (same, again)) = (pair[0], pair[1]);
            if decision == same {
                note(
                    again,
                    format!("answers decision {decision} a second time (first at {first})"),
                );
            }
        }
        lowest
    }

    /// Applies one claim to the seals it could concern.
    fn apply(
        &self,
        index: u64,
        claim: &Claim,
        seals: &mut Vec<(Range<usize>, Seal)>,
        totals: &mut Totals,
    ) -> Result<(), Tamper> {
        let (Claim::Grant { seal, decision } | Claim::Redeem { seal, decision }) = claim else {
            return Ok(());
        };
        let seal_id = &self.ids[seal.clone()];
        let known = seals
            .iter_mut()
            .find(|(id, _)| &self.ids[id.clone()] == seal_id)
            .map(|(_, s)| s);
        match (claim, known) {
            (Claim::Grant { .. }, Some(first)) => Err(Tamper(format!(
                "entry {index}: grants seal {seal_id} already granted by entry {}",
                first.granted_by
            ))),
            (Claim::Grant { .. }, None) => {
                seals.push((
                    seal.clone(),
                    Seal {
                        granted_by: index,
                        decision: *decision,
                        redeemed_by: None,
                    },
                ));
                totals.seals += 1;
                Ok(())
            }
            (_, None) => Err(Tamper(format!(
                "entry {index}: redeems seal {seal_id} that no earlier entry granted"
            ))),
            (_, Some(granted)) if granted.decision != *decision => Err(Tamper(format!(
                "entry {index}: redeems seal {seal_id} naming decision {decision} but it was granted by {}",
                granted.decision
            ))),
            (_, Some(granted)) => match granted.redeemed_by {
                Some(first) => Err(Tamper(format!(
                    "entry {index}: redeems seal {seal_id} a second time (first at {first})"
                ))),
                None => {
                    granted.redeemed_by = Some(index);
                    totals.redemptions += 1;
                    Ok(())
                }
            },
        }
    }

    /// Every seal granted, as `(entry, decision, seal id)`, in entry order.
    pub(super) fn grants(&self) -> impl Iterator<Item = (u64, u64, &str)> + Clone + '_ {
        self.claims.iter().filter_map(|c| match &c.claim {
            Claim::Grant { seal, decision } => Some((c.index, *decision, &self.ids[seal.clone()])),
            _ => None,
        })
    }

    /// Every redemption, as `(entry, seal id)`, in entry order.
    pub(super) fn redemptions(&self) -> impl Iterator<Item = (u64, &str)> + Clone + '_ {
        self.claims.iter().filter_map(|c| match &c.claim {
            Claim::Redeem { seal, .. } => Some((c.index, &self.ids[seal.clone()])),
            _ => None,
        })
    }

    /// Every approval, as `(entry, decision, approved, approver, the seal it grants)`,
    /// in entry order.
    pub(super) fn resolutions(
        &self,
    ) -> impl Iterator<Item = (u64, u64, bool, &str, Option<&str>)> + Clone + '_ {
        self.resolutions.iter().map(|r| {
            let at = self.claims.partition_point(|c| c.index < r.index);
            let seal = match self.claims.get(at) {
                Some(Recorded {
                    index,
                    claim: Claim::Grant { seal, .. },
                    ..
                }) if *index == r.index => Some(&self.ids[seal.clone()]),
                _ => None,
            };
            (r.index, r.decision, r.approved, &*r.approver, seal)
        })
    }

    /// Every policy activation, as `(entry, version)`, in entry order.
    pub(super) fn activations(&self) -> impl Iterator<Item = (u64, &str)> + Clone + '_ {
        self.activations
            .iter()
            .map(|(index, version)| (*index, &**version))
    }

    /// Keeps `seal_id` for the claims and names where it is.
    fn keep(&mut self, seal_id: &str) -> Range<usize> {
        let start = self.ids.len();
        self.ids.push_str(seal_id);
        start..self.ids.len()
    }

    /// What the members say, with the problems an entry can have on its own.
    fn claim(&mut self, index: u64, r: &Refs<'_>) -> Result<Claim, Tamper> {
        let bad = |what: &str| Tamper(format!("entry {index}: {} entry without {what}", r.kind));
        match r.kind.as_ref() {
            "decision" => {
                let status = r.status.as_deref().ok_or_else(|| bad("status"))?;
                if status == Status::PendingApproval.as_str() {
                    let id = r.decision_id.as_deref().ok_or_else(|| bad("decision_id"))?;
                    self.pending.push((index, id.into()));
                }
                let Some(seal) = &r.seal else {
                    return Ok(Claim::None);
                };
                if status != "approved" {
                    return Err(Tamper(format!(
                        "entry {index}: grants seal {} but its status is {status}",
                        seal.seal_id
                    )));
                }
                Ok(Claim::Grant {
                    seal: self.keep(&seal.seal_id),
                    decision: index,
                })
            }
            "approval_resolved" => {
                let decision = r.decision_index.ok_or_else(|| bad("decision_index"))?;
                let id = r.decision_id.as_deref().ok_or_else(|| bad("decision_id"))?;
                let approved = r.approved.ok_or_else(|| bad("approved"))?;
                let approver = r.approver.as_deref().ok_or_else(|| bad("approver"))?;
                self.resolutions.push(Resolution {
                    index,
                    decision,
                    decision_id: id.into(),
                    approved,
                    approver: approver.into(),
                });
                let Some(seal) = &r.seal else {
                    return Ok(Claim::None);
                };
                if !approved {
                    return Err(Tamper(format!(
                        "entry {index}: grants seal {} for a refused approval",
                        seal.seal_id
                    )));
                }
                Ok(Claim::Grant {
                    seal: self.keep(&seal.seal_id),
                    decision,
                })
            }
            "seal_redeemed" => {
                let seal_id = r.seal_id.as_deref().ok_or_else(|| bad("seal_id"))?;
                let decision = r.decision_index.ok_or_else(|| bad("decision_index"))?;
                Ok(Claim::Redeem {
                    seal: self.keep(seal_id),
                    decision,
                })
            }
            "policy_activated" => {
                let version = r.version.as_deref().ok_or_else(|| bad("version"))?;
                self.activations.push((index, version.into()));
                Ok(Claim::None)
            }
            "key_rotated" => Ok(Claim::None),
            other => Err(Tamper(format!("entry {index}: unknown kind {other:?}"))),
        }
    }

    fn read_strict(&mut self, index: u64, bytes: &[u8]) -> Result<Claim, Tamper> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Tamper(format!("entry {index}: not JSON ({e})")))?;
        if canonical::value_to_vec(&value).ok().as_deref() != Some(bytes) {
            return Err(Tamper(format!(
                "entry {index}: not in RFC 8785 canonical form"
            )));
        }
        let entry: Entry = serde_json::from_value(value)
            .map_err(|e| Tamper(format!("entry {index}: not a sealgate entry ({e})")))?;
        match &entry {
            Entry::Decision(d) if d.status == Status::PendingApproval => {
                self.pending.push((index, d.decision_id.as_str().into()))
            }
            Entry::ApprovalResolved(a) => self.resolutions.push(Resolution {
                index,
                decision: a.decision_index,
                decision_id: a.decision_id.as_str().into(),
                approved: a.approved,
                approver: a.approver.as_str().into(),
            }),
            Entry::PolicyActivated(p) => self.activations.push((index, p.version.as_str().into())),
            _ => {}
        }
        match entry {
            Entry::Decision(d) => match d.seal {
                Some(seal) if d.status != Status::Approved => Err(Tamper(format!(
                    "entry {index}: grants seal {} but its status is {}",
                    seal.seal_id,
                    d.status.as_str()
                ))),
                Some(seal) => Ok(Claim::Grant {
                    seal: self.keep(&seal.seal_id),
                    decision: index,
                }),
                None => Ok(Claim::None),
            },
            Entry::ApprovalResolved(a) => match a.seal {
                Some(seal) if !a.approved => Err(Tamper(format!(
                    "entry {index}: grants seal {} for a refused approval",
                    seal.seal_id
                ))),
                Some(seal) => Ok(Claim::Grant {
                    seal: self.keep(&seal.seal_id),
                    decision: a.decision_index,
                }),
                None => Ok(Claim::None),
            },
            Entry::SealRedeemed(r) => Ok(Claim::Redeem {
                seal: self.keep(&r.seal_id),
                decision: r.decision_index,
            }),
            Entry::PolicyActivated(_) | Entry::KeyRotated(_) => Ok(Claim::None),
        }
    }
}

/// Reads the cross-reference members of an entry shaped as sealgate writes it, or
/// `None` when the entry needs serde_json: whitespace between tokens, an escape or a
/// non-ASCII byte in a key or in a member read here, a member repeated or of an
/// unusual type, nesting deeper than 64, or an error (serde_json describes it).
/// Skipped values are checked as serde_json checks values it ignores.
fn scan(b: &[u8]) -> Option<Refs<'_>> {
    let mut refs = Refs::default();
    let mut seen = [false; 9];
    let mut i = 1;
    if *b.first()? != b'{' {
        return None;
    }
    loop {
        let (key, after) = plain(b, i)?;
        i = colon(b, after)?;
        let member = match key {
            b"kind" => 0,
            b"status" => 1,
            b"approved" => 2,
            b"seal" => 3,
            b"seal_id" => 4,
            b"decision_index" => 5,
            b"decision_id" => 6,
            b"version" => 7,
            b"approver" => 8,
            _ => {
                i = skip_value(b, i)?;
                9
            }
        };
        if member < 9 {
            if std::mem::replace(&mut seen[member], true) {
                return None;
            }
            i = match member {
                0 => {
                    let (kind, after) = plain_str(b, i)?;
                    refs.kind = Cow::Borrowed(kind);
                    after
                }
                1 => or_null(b, i, plain_str, &mut refs.status)?,
                2 => or_null(b, i, boolean, &mut refs.approved)?,
                3 => or_null(b, i, grant, &mut refs.seal)?,
                4 => or_null(b, i, plain_str, &mut refs.seal_id)?,
                5 => or_null(b, i, index, &mut refs.decision_index)?,
                6 => or_null(b, i, plain_str, &mut refs.decision_id)?,
                7 => or_null(b, i, plain_str, &mut refs.version)?,
                _ => or_null(b, i, plain_str, &mut refs.approver)?,
            };
        }
        match *b.get(i)? {
            b',' => i += 1,
            b'}' if i + 1 == b.len() && seen[0] => return Some(refs),
            _ => return None,
        }
    }
}

/// Reads a value at an index: the value and the index past it.
type Reader<'a, T> = fn(&'a [u8], usize) -> Option<(T, usize)>;

/// `null` leaves `slot` empty; anything else is read by `read`.
fn or_null<'a, T, U: From<T>>(
    b: &'a [u8],
    i: usize,
    read: Reader<'a, T>,
    slot: &mut Option<U>,
) -> Option<usize> {
    if b.get(i..i + 4) == Some(b"null") {
        return Some(i + 4);
    }
    let (value, after) = read(b, i)?;
    *slot = Some(value.into());
    Some(after)
}

fn colon(b: &[u8], i: usize) -> Option<usize> {
    (*b.get(i)? == b':').then_some(i + 1)
}

const ONES: u64 = u64::MAX / 255;
const HIGH: u64 = ONES << 7;

/// The bytes of `w` (little-endian) that end a run of plain string contents: `"`,
/// `\` or a control character, and with `wide` any byte above 0x7f too. Each is
/// marked by its high bit; the lowest mark is exact (higher ones may be spurious).
#[inline(always)]
fn stops(w: u64, wide: bool) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let low =
        (w.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES))
            & !w;
    (if wide { low | w } else { low }) & HIGH
}

/// The first byte at or after `i` that [`stops`] a string, eight bytes at a time.
#[inline(always)]
fn next_stop(b: &[u8], mut i: usize, wide: bool) -> Option<usize> {
    while let Some(word) = b.get(i..i + 8) {
        let found = stops(u64::from_le_bytes(word.try_into().ok()?), wide);
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20 || (wide && c > 0x7f))
        .map(|at| i + at)
}

/// A string of ASCII without escapes or control characters at `i` (its opening
/// quote): its contents and the index past it.
#[inline]
fn plain(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let end = next_stop(b, i + 1, true)?;
    (b[end] == b'"').then(|| (&b[i + 1..end], end + 1))
}

fn plain_str(b: &[u8], i: usize) -> Option<(&str, usize)> {
    let (s, after) = plain(b, i)?;
    Some((std::str::from_utf8(s).ok()?, after))
}

fn boolean(b: &[u8], i: usize) -> Option<(bool, usize)> {
    match b.get(i..)? {
        [b't', b'r', b'u', b'e', ..] => Some((true, i + 4)),
        [b'f', b'a', b'l', b's', b'e', ..] => Some((false, i + 5)),
        _ => None,
    }
}

/// A non-negative integer as serde_json reads a `u64`: digits, no leading zero.
fn index(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let digits = b
        .get(i..)?
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || digits > 19 || (digits > 1 && b[i] == b'0') {
        return None;
    }
    let end = i + digits;
    if matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let n = b[i..end]
        .iter()
        .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    Some((n, end))
}

/// A seal grant: an object with exactly one plain `seal_id` and plain keys.
fn grant(b: &[u8], i: usize) -> Option<(Grant<'_>, usize)> {
    if *b.get(i)? != b'{' {
        return None;
    }
    let mut seal_id = None;
    let mut i = i + 1;
    loop {
        let (key, after) = plain(b, i)?;
        i = colon(b, after)?;
        if key == b"seal_id" {
            if seal_id.is_some() {
                return None;
            }
            let (id, after) = plain_str(b, i)?;
            seal_id = Some(id);
            i = after;
        } else {
            i = skip_value(b, i)?;
        }
        match *b.get(i)? {
            b',' => i += 1,
            b'}' => {
                let seal_id = Cow::Borrowed(seal_id?);
                return Some((Grant { seal_id }, i + 1));
            }
            _ => return None,
        }
    }
}

/// The end of the JSON value starting at `i`, checked as serde_json checks a value it
/// ignores (strings are not checked for UTF-8), without whitespace or deep nesting.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    // One bit per open container, innermost lowest: 1 for an object, 0 for an array.
    let mut open: u64 = 0;
    let mut depth = 0u32;
    loop {
        // A value: strings are the most common, so they are tested first.
        let c = *b.get(i)?;
        if c == b'"' {
            i = string_end(b, i + 1)?;
        } else if c == b'{' || c == b'[' {
            {
                depth += 1;
                if depth > 64 {
                    return None;
                }
                let object = c == b'{';
                open = open << 1 | u64::from(object);
                i += 1;
                let close = if object { b'}' } else { b']' };
                if *b.get(i)? != close {
                    if object {
                        i = key_end(b, i)?;
                    }
                    continue;
                }
                // Empty: closed below.
                i += 1;
                depth -= 1;
                open >>= 1;
            }
        } else {
            i = match c {
                b't' if b.get(i..i + 4) == Some(b"true") => i + 4,
                b'f' if b.get(i..i + 5) == Some(b"false") => i + 5,
                b'n' if b.get(i..i + 4) == Some(b"null") => i + 4,
                b'-' | b'0'..=b'9' => number_end(b, i)?,
                _ => return None,
            }
        }
        // After a value: a comma and the next member, or closing brackets.
        loop {
            if depth == 0 {
                return Some(i);
            }
            let object = open & 1 == 1;
            match *b.get(i)? {
                b',' => {
                    i += 1;
                    if object {
                        i = key_end(b, i)?;
                    }
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            i += 1;
            depth -= 1;
            open >>= 1;
        }
    }
}

/// Past a key and its colon; `i` is at the key's opening quote.
#[inline(always)]
fn key_end(b: &[u8], i: usize) -> Option<usize> {
    if *b.get(i)? != b'"' {
        return None;
    }
    colon(b, string_end(b, i + 1)?)
}

/// Past the closing quote of the string whose contents start at `i`, checking escapes
/// and refusing control characters (as serde_json does).
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = next_stop(b, i, false)?;
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                i = match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i + 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i + 6,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

/// Past a JSON number starting at `i`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], i: usize| {
        b.get(i..)
            .map_or(0, |s| s.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    if b[i] == b'-' {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i += digits(b, i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(b, i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(b, i);
        if n == 0 {
            return None;
        }
        i += n;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;

    /// Canonical bytes of `value`, as the ledger stores an entry.
    fn canonical(value: &Value) -> Vec<u8> {
        canonical::value_to_vec(value).expect("canonical")
    }

    fn decision(seal: Option<&str>, status: &str) -> Value {
        let mut d = json!({
            "kind": "decision", "decision_id": "dec-1", "manifest_id": "man-1",
            "manifest": {"agent_id": "a", "org_id": "acme", "provider": "stripe", "method": "payment", "parameters": {"amount": 1200, "currency": "usd",
                         "note": "say \"hi\"\n\u{e9}t\u{e9}", "tags": [1, -2.5e3, true, null, [], {}]},
                         "reasoning": "due", "confidence_score": 0.9},
            "manifest_hash": "ab", "policy_version": null, "reasons": [], "redacted": [],
            "screening": {"prompt_injection": {"families": [], "flagged": false, "score": 0}, "secrets": []},
            "latency_us": {"policy": 20, "screen": 5, "total": 80},
            "server_time": "2026-11-23T12:00:00.000000Z", "status": status, "submitted_by": "key_1",
        });
        if let Some(id) = seal {
            d["seal"] = json!({"expires_at": "2026-11-23T12:05:00.000000Z", "seal_id": id});
        }
        d
    }

    fn approval(seal: Option<&str>, approved: bool, decision_index: u64) -> Value {
        let mut a = json!({
            "kind": "approval_resolved", "approved": approved, "approver": "bo", "decision_id": "dec-1",
            "decision_index": decision_index, "reason": "ok", "server_time": "2026-11-23T12:00:00.000000Z",
        });
        if let Some(id) = seal {
            a["seal"] = json!({"expires_at": "2026-11-23T12:05:00.000000Z", "seal_id": id});
        }
        a
    }

    fn redemption(seal: &str, decision_index: u64) -> Value {
        json!({"kind": "seal_redeemed", "seal_id": seal, "decision_index": decision_index,
               "redeemed_by": "key_2", "server_time": "2026-11-23T12:01:00.000000Z"})
    }

    fn samples() -> Vec<Vec<u8>> {
        [
            decision(Some("seal-1"), "approved"),
            decision(None, "denied"),
            decision(Some("seal-2"), "denied"),
            approval(Some("seal-3"), true, 4),
            approval(None, false, 4),
            redemption("seal-1", 0),
            json!({"kind": "policy_activated", "version": "v2", "previous_version": null,
                   "activated_by": "admin", "server_time": "2026-11-23T12:00:00.000000Z"}),
            json!({"kind": "key_rotated", "purpose": "seal", "key_id": "k2", "public_key": "AAAA",
                   "server_time": "2026-11-23T12:00:00.000000Z"}),
        ]
        .iter()
        .map(canonical)
        .collect()
    }

    /// The scan may decline anything, but what it reads serde_json must read too.
    fn agrees(bytes: &[u8]) {
        if let Some(scanned) = scan(bytes) {
            let parsed: Result<Refs<'_>, _> = serde_json::from_slice(bytes);
            assert_eq!(
                parsed.as_ref().ok(),
                Some(&scanned),
                "{:?}: serde_json says {parsed:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn scan_reads_what_sealgate_writes() {
        for bytes in samples() {
            let scanned = scan(&bytes);
            assert!(scanned.is_some(), "{}", String::from_utf8_lossy(&bytes));
            agrees(&bytes);
        }
    }

    #[test]
    fn scan_agrees_with_serde_json_on_every_single_byte_edit() {
        let replacements = b" \t\n\"\\/{}[]:,.-+0123456789eEtrufalsn\x00\x1f\x7f\xc3\xff_xkdi";
        for bytes in samples() {
            for at in 0..bytes.len() {
                let mut edited = bytes.clone();
                for &r in replacements {
                    edited[at] = r;
                    agrees(&edited);
                }
                let mut cut = bytes.clone();
                cut.remove(at);
                agrees(&cut);
                for &r in b" \",{}[]\\0" {
                    let mut grown = bytes.clone();
                    grown.insert(at, r);
                    agrees(&grown);
                }
            }
            for len in 0..bytes.len() {
                agrees(&bytes[..len]);
            }
        }
    }

    /// Random objects around the members read: repeated, null, wrongly typed, escaped,
    /// nested where they do not count.
    #[test]
    fn scan_agrees_with_serde_json_on_random_entries() {
        let keys = [
            "\"kind\"",
            "\"status\"",
            "\"approved\"",
            "\"seal\"",
            "\"seal_id\"",
            "\"decision_index\"",
            "\"decision_id\"",
            "\"x\"",
            "\"k\\u0069nd\"",
            "\"se\u{e9}l\"",
        ];
        let values = [
            "\"decision\"",
            "\"approval_resolved\"",
            "\"seal_redeemed\"",
            "\"approved\"",
            "\"denied\"",
            "\"s-1\"",
            "\"s\\\"1\"",
            "\"\u{e9}\"",
            "null",
            "true",
            "false",
            "0",
            "7",
            "007",
            "-1",
            "1.5",
            "1e2",
            "18446744073709551615",
            "99999999999999999999",
            "{\"seal_id\":\"s-1\"}",
            "{\"expires_at\":\"t\",\"seal_id\":\"s-2\"}",
            "{\"seal_id\":\"a\",\"seal_id\":\"b\"}",
            "{\"seal_id\":null}",
            "{}",
            "[\"s-1\"]",
            "[]",
            "{\"kind\":\"decision\",\"seal\":{\"seal_id\":\"z\"}}",
            "[[[{\"a\":[1,{\"b\":\"}\"}]}]]]",
        ];
        let mut rng = SmallRng::seed_from_u64(6962);
        for _ in 0..200_000 {
            let members = rng.gen_range(0..7);
            let mut text = String::from("{");
            for m in 0..members {
                if m > 0 {
                    text.push(',');
                }
                text.push_str(keys[rng.gen_range(0..keys.len())]);
                text.push(':');
                text.push_str(values[rng.gen_range(0..values.len())]);
            }
            text.push('}');
            agrees(text.as_bytes());
        }
    }

    #[test]
    fn scan_declines_deep_nesting_and_serde_json_decides() {
        let deep = |n: usize| {
            format!(
                "{{\"kind\":\"key_rotated\",\"x\":{}{}}}",
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(scan(deep(64).as_bytes()).is_some());
        assert!(scan(deep(65).as_bytes()).is_none());
        let mut refs = CrossRefs::default();
        refs.read(0, deep(500).as_bytes(), false);
        assert_eq!(refs.check(u64::MAX), Ok(Totals::default()));
    }

    /// The cross-references of `entries`, read leniently and strictly: both must agree.
    fn check(entries: &[Value]) -> Result<Totals, Tamper> {
        let run = |strict: bool| {
            let mut refs = CrossRefs::default();
            for (i, e) in entries.iter().enumerate() {
                refs.read(i as u64, &canonical(e), strict);
            }
            refs.check(u64::MAX)
        };
        let lenient = run(false);
        assert_eq!(lenient, run(true), "strict and lenient disagree");
        lenient
    }

    fn problem(entries: &[Value]) -> String {
        check(entries).expect_err("a problem").0
    }

    #[test]
    fn seals_follow_their_decisions() {
        assert_eq!(
            check(&[
                decision(Some("s1"), "approved"),
                decision(None, "pending_approval"),
                approval(Some("s2"), true, 1),
                redemption("s1", 0),
                redemption("s2", 1),
            ]),
            Ok(Totals {
                seals: 2,
                redemptions: 2
            })
        );
    }

    #[test]
    fn each_broken_reference_is_named_at_its_entry() {
        let approved = decision(Some("s1"), "approved");
        assert_eq!(
            problem(&[approved.clone(), approved.clone()]),
            "entry 1: grants seal s1 already granted by entry 0"
        );
        assert_eq!(
            problem(&[approved.clone(), redemption("s9", 0)]),
            "entry 1: redeems seal s9 that no earlier entry granted"
        );
        assert_eq!(
            problem(&[approved.clone(), redemption("s1", 3)]),
            "entry 1: redeems seal s1 naming decision 3 but it was granted by 0"
        );
        assert_eq!(
            problem(&[approved.clone(), redemption("s1", 0), redemption("s1", 0)]),
            "entry 2: redeems seal s1 a second time (first at 1)"
        );
        assert_eq!(
            problem(&[decision(Some("s1"), "denied")]),
            "entry 0: grants seal s1 but its status is denied"
        );
        assert_eq!(
            problem(&[approval(Some("s1"), false, 0)]),
            "entry 0: grants seal s1 for a refused approval"
        );
        assert_eq!(
            problem(&[redemption("s1", 0), decision(Some("s1"), "approved")]),
            "entry 0: redeems seal s1 that no earlier entry granted"
        );
        let pending = decision(None, "pending_approval");
        assert_eq!(
            problem(&[approved.clone(), approval(Some("s2"), true, 0)]),
            "entry 1: answers entry 0, which is not an earlier decision pending approval"
        );
        assert_eq!(
            problem(&[approval(None, false, 1), pending.clone()]),
            "entry 0: answers entry 1, which is not an earlier decision pending approval"
        );
        assert_eq!(
            problem(&[pending.clone(), approval(None, false, 9)]),
            "entry 1: answers entry 9, which is not an earlier decision pending approval"
        );
        assert_eq!(
            problem(&[
                pending.clone(),
                approval(None, false, 0),
                approval(Some("s3"), true, 0)
            ]),
            "entry 2: answers decision 0 a second time (first at 1)"
        );
        let mut elsewhere = approval(None, false, 0);
        elsewhere["decision_id"] = json!("dec-2");
        assert_eq!(
            problem(&[pending.clone(), elsewhere]),
            "entry 1: answers entry 0 as decision \"dec-2\", but that entry is decision \"dec-1\""
        );
        // The lowest problem wins, whichever check finds it.
        assert_eq!(
            problem(&[
                pending.clone(),
                approval(None, false, 0),
                redemption("s4", 0),
                approval(None, true, 0)
            ]),
            "entry 2: redeems seal s4 that no earlier entry granted"
        );
        let no_index = json!({"kind": "approval_resolved", "approved": false, "approver": "bo",
            "decision_id": "dec-1", "reason": "", "server_time": "2026-11-23T12:00:00.000000Z"});
        let mut refs = CrossRefs::default();
        refs.read(0, &canonical(&no_index), false);
        assert_eq!(
            refs.check(u64::MAX).map_err(|t| t.0),
            Err("entry 0: approval_resolved entry without decision_index".into())
        );
    }

    #[test]
    fn the_lowest_problem_below_a_bound_is_reported() {
        let mut refs = CrossRefs::default();
        refs.read(0, &canonical(&decision(Some("s1"), "approved")), false);
        refs.read(1, &canonical(&redemption("s2", 0)), false);
        refs.read(2, &canonical(&decision(Some("s1"), "approved")), false);
        refs.read(3, b"{\"kind\":", false);
        refs.read(4, &canonical(&redemption("s3", 0)), false);
        let at = |before| refs.check(before).map_err(|t| t.0);
        assert_eq!(
            at(1),
            Ok(Totals {
                seals: 1,
                redemptions: 0
            })
        );
        let unknown = "entry 1: redeems seal s2 that no earlier entry granted";
        assert_eq!(at(2), Err(unknown.into()));
        assert_eq!(at(u64::MAX), Err(unknown.into()));

        let mut refs = CrossRefs::default();
        refs.read(0, &canonical(&decision(None, "denied")), false);
        refs.read(1, &canonical(&decision(Some("s1"), "approved")), false);
        refs.read(2, b"{\"kind\":\"vote\"}", false);
        refs.read(3, &canonical(&redemption("s9", 1)), false);
        assert_eq!(
            refs.check(u64::MAX).map_err(|t| t.0),
            Err("entry 2: unknown kind \"vote\"".into())
        );
        assert_eq!(
            refs.check(2),
            Ok(Totals {
                seals: 1,
                redemptions: 0
            })
        );
    }

    #[test]
    fn entries_that_are_not_sealgate_entries_are_refused() {
        for bad in [
            &b"[]"[..],
            b"{}",
            b"{\"kind\":1}",
            b"\xff",
            b"{\"kind\":\"decision\"}",
        ] {
            let mut refs = CrossRefs::default();
            refs.read(3, bad, false);
            let t = refs.check(u64::MAX).expect_err("refused");
            assert!(t.0.starts_with("entry 3: "), "{}", t.0);
        }
        let mut refs = CrossRefs::default();
        refs.read(0, b"{\"kind\": \"key_rotated\"}", true);
        assert_eq!(
            refs.check(u64::MAX).map_err(|t| t.0),
            Err("entry 0: not in RFC 8785 canonical form".into())
        );
    }
}
