//! The tables the server decides by, held to the ledger. A seal is redeemable while
//! `seals` holds it and `redemptions` does not; a pending decision can be answered
//! while `resolutions` has no row for it, and the approver that row names may fetch
//! its seal again; the active policy is the activation of the highest index, and its
//! rules are the stored bundle of that version. The store writes those rows in the
//! transaction of the entry that implies them, so someone with the database file who
//! drops the triggers could delete a redemption (the seal works again), a resolution
//! (the decision can be answered twice) or add an activation beyond the ledger's end
//! (another policy decides, and no entry says so) without touching the ledger. The
//! full check compares every row, wherever its index points, with what the entries
//! imply, after the entries themselves have passed.

use std::ops::ControlFlow;

use sealgate_policy::Bundle;
use sealgate_store::StoreError;
use sealgate_store_sqlite::{DecidingRow, DecidingTable};
use serde::Serialize;

use super::refs::CrossRefs;
use super::{Stored, Tamper};

/// Rows compared, per table.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub(super) struct Compared {
    seals: usize,
    redemptions: usize,
    resolutions: usize,
    policy_activations: usize,
    /// Stored policy bundles, each hashed to its version.
    policies: usize,
}

/// Every row `stored` keeps is one that an entry checked in `refs` (the `size`
/// entries of the ledger) implies, and every row an entry implies is there; otherwise
/// the difference at the lowest entry. `None` when `stored` keeps no such tables.
pub(super) fn compare(
    refs: &CrossRefs,
    stored: &dyn Stored,
    size: u64,
) -> Result<Option<Result<Compared, Tamper>>, StoreError> {
    let mut compared = Compared::default();
    let mut lowest: Option<(u64, Tamper)> = None;
    let mut note = |(index, t): (u64, Tamper)| {
        if lowest.as_ref().is_none_or(|(l, _)| index < *l) {
            lowest = Some((index, t));
        }
    };
    for table in DecidingTable::ALL {
        let outcome = match table {
            DecidingTable::Seals => in_table(
                table,
                refs.grants().map(|(i, decision_index, seal_id)| {
                    (
                        i,
                        DecidingRow::Seal {
                            seal_id,
                            decision_index,
                        },
                    )
                }),
                stored,
                size,
            )?,
            DecidingTable::Redemptions => in_table(
                table,
                refs.redemptions()
                    .map(|(i, seal_id)| (i, DecidingRow::Redemption { seal_id })),
                stored,
                size,
            )?,
            DecidingTable::Resolutions => in_table(
                table,
                refs.resolutions()
                    .map(|(i, decision_index, approved, approver, seal_id)| {
                        (
                            i,
                            DecidingRow::Resolution {
                                decision_index,
                                approved,
                                approver,
                                seal_id,
                            },
                        )
                    }),
                stored,
                size,
            )?,
            DecidingTable::PolicyActivations => in_table(
                table,
                refs.activations()
                    .map(|(i, version)| (i, DecidingRow::Activation { version })),
                stored,
                size,
            )?,
        };
        let Some(outcome) = outcome else {
            return Ok(None);
        };
        match outcome {
            Ok(rows) => match table {
                DecidingTable::Seals => compared.seals = rows,
                DecidingTable::Redemptions => compared.redemptions = rows,
                DecidingTable::Resolutions => compared.resolutions = rows,
                DecidingTable::PolicyActivations => compared.policy_activations = rows,
            },
            Err(found) => note(found),
        }
    }
    match bundles(refs, stored)? {
        Some(Ok(n)) => compared.policies = n,
        Some(Err(found)) => note(found),
        None => {}
    }
    Ok(Some(lowest.map_or(Ok(compared), |(_, t)| Err(t))))
}

/// Every stored policy bundle hashes to the version it is stored under (decisions
/// name the version, so a bundle edited in place would decide under another's name),
/// and every activation names a stored bundle. A finding is placed at the first
/// activation of the version concerned, or after every entry when none activates it.
fn bundles(refs: &CrossRefs, stored: &dyn Stored) -> Result<Option<Held>, StoreError> {
    let activated = |version: &str| {
        refs.activations()
            .find(|&(_, v)| v == version)
            .map(|(i, _)| i)
    };
    let mut versions = std::collections::BTreeSet::new();
    let mut found: Option<(u64, Tamper)> = None;
    let mut note = |index: u64, what: String| {
        if found.as_ref().is_none_or(|(f, _)| index < *f) {
            found = Some((index, Tamper(what)));
        }
    };
    let kept = stored.policy_bundles(&mut |version, bytes| {
        versions.insert(version.to_owned());
        // Byte for byte the canonical form sealgate stores: another spelling of the same
        // content (`1.0` for `1`) hashes alike but may read differently.
        let what = match serde_json::from_slice::<Bundle>(bytes) {
            Ok(b) if b.version().as_str() != version => format!("hashes to {}", b.version().as_str()),
            Ok(b) if b.canonical_bytes() != bytes => "is not stored in its canonical form".to_owned(),
            Ok(_) => return,
            Err(e) => format!("is not a policy bundle ({e})"),
        };
        note(
            activated(version).unwrap_or(u64::MAX),
            format!("the policies table: bundle {version:?} {what}: it was changed outside sealgate, and decisions under that version would follow the edited rules"),
        );
    })?;
    if !kept {
        return Ok(None);
    }
    for (index, version) in refs.activations() {
        if !versions.contains(version) {
            note(
                index,
                format!("the policies table, at entry {index}: the entry activates policy {version:?}, but no bundle of that version is stored: a row was deleted behind the server's back"),
            );
        }
    }
    Ok(Some(found.map_or(Ok(versions.len()), Err)))
}

/// One table's rows compared, or its first difference: the entry and what differs.
type Held = Result<usize, (u64, Tamper)>;

/// Holds one table to the rows the entries imply (`implied`, ascending by entry):
/// the rows compared, or the first difference. Rows are streamed in storage order
/// where that is entry order as sealgate writes them; a table out of that order, or
/// one that differs, is read again sorted by entry, and that reading decides.
fn in_table<'a>(
    table: DecidingTable,
    implied: impl Iterator<Item = (u64, DecidingRow<'a>)> + Clone,
    stored: &dyn Stored,
    size: u64,
) -> Result<Option<Held>, StoreError> {
    for by_index in [false, true] {
        let mut merge = Merge {
            table,
            size,
            implied: implied.clone().peekable(),
            last: None,
            rows: 0,
            found: None,
            unordered: false,
        };
        if !stored.deciding_rows(table, by_index, &mut |index, row| merge.row(index, row))? {
            return Ok(None);
        }
        let settled = by_index || (!merge.unordered && merge.found.is_none());
        if settled {
            return Ok(Some(merge.end()));
        }
    }
    unreachable!("the sorted reading settles it")
}

/// A walk through one table's rows beside the rows the entries imply.
struct Merge<'a, I: Iterator<Item = (u64, DecidingRow<'a>)>> {
    table: DecidingTable,
    /// Entries in the ledger: a row of any entry from here on is one no entry implies.
    size: u64,
    implied: std::iter::Peekable<I>,
    /// The entry of the row before.
    last: Option<u64>,
    rows: usize,
    found: Option<(u64, Tamper)>,
    /// A row came before one of a lower entry: the walk proves nothing.
    unordered: bool,
}

impl<'a, I: Iterator<Item = (u64, DecidingRow<'a>)>> Merge<'a, I> {
    fn row(&mut self, index: u64, got: DecidingRow<'_>) -> ControlFlow<()> {
        if self.last.is_some_and(|last| index < last) {
            self.unordered = true;
            return ControlFlow::Break(());
        }
        self.last = Some(index);
        self.rows += 1;
        // Rows the entries imply below this one's entry are missing.
        if let Some(&(i, want)) = self.implied.peek() {
            if i < index {
                return self.found(i, format!(
                    "the entry implies a row ({}) but there is none: a row was deleted behind the server's back",
                    show(&want)
                ));
            }
        }
        if index >= self.size {
            let size = self.size;
            return self.found(index, format!(
                "a row ({}) for an entry beyond the {size} the ledger holds: a row was added behind the server's back",
                show(&got)
            ));
        }
        match self.implied.peek() {
            Some(&(i, want)) if i == index => {
                self.implied.next();
                if want != got {
                    return self.found(index, format!(
                        "the row says {} where the entry implies {}: a row was changed behind the server's back",
                        show(&got),
                        show(&want)
                    ));
                }
                ControlFlow::Continue(())
            }
            _ => self.found(index, format!(
                "a row ({}) that the entry does not imply: a row was added behind the server's back",
                show(&got)
            )),
        }
    }

    fn found(&mut self, index: u64, what: String) -> ControlFlow<()> {
        let table = self.table.name();
        self.found = Some((
            index,
            Tamper(format!("the {table} table, at entry {index}: {what}")),
        ));
        ControlFlow::Break(())
    }

    /// After the last row: rows the entries imply that never came are missing.
    fn end(mut self) -> Held {
        if self.found.is_none() {
            if let Some((i, want)) = self.implied.next() {
                let _ = self.found(i, format!(
                    "the entry implies a row ({}) but there is none: a row was deleted behind the server's back",
                    show(&want)
                ));
            }
        }
        self.found.map_or(Ok(self.rows), Err)
    }
}

/// A row as a report names it; the strings come from the database and are escaped.
fn show(row: &DecidingRow<'_>) -> String {
    match row {
        DecidingRow::Seal {
            seal_id,
            decision_index,
        } => format!("seal {seal_id:?} for decision {decision_index}"),
        DecidingRow::Redemption { seal_id } => format!("redemption of seal {seal_id:?}"),
        DecidingRow::Resolution {
            decision_index,
            approved,
            approver,
            seal_id,
        } => {
            let answer = if *approved { "approved" } else { "refused" };
            match seal_id {
                Some(id) => format!(
                    "decision {decision_index} {answer} by {approver:?}, granting seal {id:?}"
                ),
                None => {
                    format!("decision {decision_index} {answer} by {approver:?}, granting no seal")
                }
            }
        }
        DecidingRow::Activation { version } => format!("activation of policy {version:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;

    /// A table of redemptions, in the storage order given.
    struct Rows(Vec<(u64, &'static str)>);

    impl Stored for Rows {
        fn level(&self, _: u8, _: Range<u64>, _: &mut dyn FnMut(u64, &[u8])) -> anyhow::Result<()> {
            Ok(())
        }

        fn deciding_rows(
            &self,
            _: DecidingTable,
            by_index: bool,
            each: &mut dyn FnMut(u64, DecidingRow<'_>) -> ControlFlow<()>,
        ) -> Result<bool, StoreError> {
            let mut rows: Vec<_> = self.0.iter().collect();
            if by_index {
                rows.sort_by_key(|r| r.0);
            }
            for &&(index, seal_id) in &rows {
                if each(index, DecidingRow::Redemption { seal_id }).is_break() {
                    break;
                }
            }
            Ok(true)
        }
    }

    fn differ(
        implied: &[(u64, &'static str)],
        rows: &[(u64, &'static str)],
    ) -> Result<usize, (u64, String)> {
        let implied = implied
            .iter()
            .map(|&(i, seal_id)| (i, DecidingRow::Redemption { seal_id }));
        in_table(
            DecidingTable::Redemptions,
            implied,
            &Rows(rows.to_vec()),
            10,
        )
        .expect("read")
        .expect("kept")
        .map_err(|(i, t)| (i, t.0))
    }

    #[test]
    fn the_first_difference_is_named_at_its_entry() {
        assert_eq!(differ(&[(1, "a"), (4, "b")], &[(1, "a"), (4, "b")]), Ok(2));
        assert_eq!(differ(&[], &[]), Ok(0));
        // Stored out of entry order (a row deleted and put back): read again, sorted.
        assert_eq!(differ(&[(1, "a"), (4, "b")], &[(4, "b"), (1, "a")]), Ok(2));
        let (at, what) = differ(&[(1, "a"), (4, "b")], &[(1, "a")]).expect_err("missing");
        assert_eq!(at, 4);
        assert!(
            what.contains("implies a row (redemption of seal \"b\") but there is none"),
            "{what}"
        );
        let (at, what) = differ(&[(1, "a"), (4, "b")], &[(4, "b")]).expect_err("missing first");
        assert_eq!(at, 1, "{what}");
        let (at, what) = differ(&[(4, "b")], &[(2, "x"), (4, "b")]).expect_err("added");
        assert_eq!(at, 2);
        assert!(
            what.contains("a row (redemption of seal \"x\") that the entry does not imply"),
            "{what}"
        );
        let (at, what) = differ(&[(4, "b")], &[(4, "c")]).expect_err("changed");
        assert_eq!(at, 4);
        assert!(
            what.contains(
                "says redemption of seal \"c\" where the entry implies redemption of seal \"b\""
            ),
            "{what}"
        );
        // Two rows for one entry: the second is one no entry implies.
        let (at, what) = differ(&[(4, "b")], &[(4, "b"), (4, "b")]).expect_err("doubled");
        assert_eq!(at, 4);
        assert!(
            what.starts_with("the redemptions table, at entry 4: a row (redemption"),
            "{what}"
        );
        // A row of an entry beyond the ledger's end: no entry implies it, and the
        // server would read it all the same.
        let (at, what) = differ(&[(4, "b")], &[(4, "b"), (1 << 62, "x")]).expect_err("beyond");
        assert_eq!(at, 1 << 62);
        assert!(
            what.contains("for an entry beyond the 10 the ledger holds"),
            "{what}"
        );
        // A row deleted below and one added beyond: the lower entry is named.
        let (at, what) = differ(&[(1, "a"), (4, "b")], &[(4, "b"), (1 << 62, "x")])
            .expect_err("deleted and added");
        assert_eq!(at, 1, "{what}");
    }
}
