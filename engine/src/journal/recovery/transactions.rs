//! Transactions across shards ([`resolve_transactions`]): which parts of
//! multi-shard commands are complete in every shard's log, and where each
//! shard's log is cut.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;

/// One record of one shard: `logs[shard].records[record]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartRef {
    pub shard: usize,
    pub record: usize,
}

/// A complete transaction: one part per participating shard, in shard order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub txid: u64,
    pub parts: Vec<PartRef>,
}

/// What a shard replays, in LSN order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A single-shard command record (`records[record]`).
    Command { record: usize },
    /// This shard's part of [`Resolved::transactions`]`[transaction]`.
    Part { record: usize, transaction: usize },
}

impl Step {
    pub fn record(&self) -> usize {
        match *self {
            Self::Command { record } | Self::Part { record, .. } => record,
        }
    }
}

/// Where a shard's log was cut because of an incomplete transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardCut {
    /// The first dropped record (the incomplete transaction's part).
    pub record: usize,
    pub lsn: u64,
    pub txid: u64,
    /// Segment index and offset to pass to [`ShardLog::truncate_at`].
    pub segment: usize,
    pub offset: u64,
    pub path: PathBuf,
    /// Number of records dropped (the part and everything after it).
    pub dropped_records: usize,
}

/// One shard's replay plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardReplay {
    pub steps: Vec<Step>,
    pub cut: Option<ShardCut>,
}

/// A transaction that is not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedTransaction {
    pub txid: u64,
    pub participants: u16,
    /// Every part found on disk (including parts beyond a cut).
    pub found: Vec<PartRef>,
}

impl DroppedTransaction {
    /// True when all parts were on disk but one lay after another
    /// incomplete transaction's part in its shard.
    pub fn dropped_by_cascade(&self) -> bool {
        self.found.len() >= usize::from(self.participants)
    }
}

/// The result of [`resolve_transactions`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// One plan per log, in the order of the `logs` argument.
    pub shards: Vec<ShardReplay>,
    /// Complete transactions, in order of their first part's appearance.
    pub transactions: Vec<Transaction>,
    /// Incomplete (or cascade-dropped) transactions, by txid.
    pub dropped: Vec<DroppedTransaction>,
}

impl Resolved {
    /// Number of records dropped over all shards.
    pub fn dropped_records(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.cut.as_ref())
            .map(|c| c.dropped_records)
            .sum()
    }
}

/// Decides which records are replayed (rules in the module doc). `logs`
/// are all shards' logs; indices in the result refer to them.
// Indices used below come from enumerating `logs` and their records.
#[allow(clippy::indexing_slicing)]
pub fn resolve_transactions(logs: &[ShardLog]) -> Result<Resolved, RecoveryError> {
    // txid -> (participants, parts found), in order of first appearance.
    let mut order: Vec<u64> = Vec::new();
    let mut parts: HashMap<u64, (u16, Vec<PartRef>)> = HashMap::new();
    for (s, log) in logs.iter().enumerate() {
        for (i, r) in log.records.iter().enumerate() {
            if r.txid == 0 {
                continue;
            }
            let bad = |detail: String| corruption(log.segment_path(r), r.offset, detail);
            let entry = parts.entry(r.txid).or_insert_with(|| {
                order.push(r.txid);
                (r.parts, Vec::new())
            });
            if entry.0 != r.parts {
                return Err(bad(format!(
                    "part of transaction {} claims {} participants, another part claims {}",
                    r.txid, r.parts, entry.0
                )));
            }
            if entry.1.iter().any(|p| p.shard == s) {
                return Err(bad(format!(
                    "second part of transaction {} in one shard",
                    r.txid
                )));
            }
            entry.1.push(PartRef {
                shard: s,
                record: i,
            });
            if entry.1.len() > usize::from(r.parts) {
                return Err(bad(format!(
                    "transaction {} has more parts than its {} participants",
                    r.txid, r.parts
                )));
            }
        }
    }
    // Cut each shard at the first part of an incomplete transaction, until
    // nothing changes (cuts only move backwards, so this ends).
    let mut cut: Vec<usize> = logs.iter().map(|l| l.records.len()).collect();
    loop {
        let mut changed = false;
        for txid in &order {
            let (p, found) = &parts[txid];
            let live = found.iter().filter(|x| x.record < cut[x.shard]).count();
            if live < usize::from(*p) {
                for x in found {
                    if x.record < cut[x.shard] {
                        cut[x.shard] = x.record;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut resolved = Resolved::default();
    let mut tx_index: BTreeMap<u64, usize> = BTreeMap::new();
    for txid in &order {
        let (p, found) = &parts[txid];
        let live = found.iter().filter(|x| x.record < cut[x.shard]).count();
        if live == usize::from(*p) {
            tx_index.insert(*txid, resolved.transactions.len());
            let mut ps = found.clone();
            ps.sort();
            resolved.transactions.push(Transaction {
                txid: *txid,
                parts: ps,
            });
        } else {
            resolved.dropped.push(DroppedTransaction {
                txid: *txid,
                participants: *p,
                found: found.clone(),
            });
        }
    }
    for (s, log) in logs.iter().enumerate() {
        let end = cut[s];
        let mut plan = ShardReplay::default();
        for (i, r) in log.records.iter().enumerate().take(end) {
            plan.steps.push(if r.txid == 0 {
                Step::Command { record: i }
            } else {
                match tx_index.get(&r.txid) {
                    Some(&t) => Step::Part {
                        record: i,
                        transaction: t,
                    },
                    None => {
                        return Err(corruption(
                            log.segment_path(r),
                            r.offset,
                            "internal: incomplete transaction before the cut",
                        ))
                    }
                }
            });
        }
        if let Some(r) = log.records.get(end) {
            plan.cut = Some(ShardCut {
                record: end,
                lsn: r.lsn,
                txid: r.txid,
                segment: r.segment,
                offset: r.offset,
                path: log.segment_path(r).to_path_buf(),
                dropped_records: log.records.len() - end,
            });
        }
        resolved.shards.push(plan);
    }
    Ok(resolved)
}
