//! Cost counters: bytes sent to each peer, messages, rounds, values opened and to whom,
//! in total and per label.
//!
//! Protocols record bytes as they send (measured, not estimated) and declare their
//! rounds; the test suite checks both against each protocol's documentation and checks
//! the declared rounds against the causal depth the in-memory transport measures.
//! Labels are fixed-capacity strings (`heapless`), so bookkeeping does not allocate on
//! the hot path; a label path longer than [`LABEL_CAPACITY`] bytes is cut short.

use alloc::vec::Vec;
use core::ops::AddAssign;

use crate::transport::PartyId;

/// Bytes a label path can hold (`outer/inner/...`).
pub const LABEL_CAPACITY: usize = 64;

/// A label path such as `"unet/conv1/trunc"`.
pub type Label = heapless::String<LABEL_CAPACITY>;

/// What one party spent: counted at that party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// Payload bytes this party sent to each party (index = receiver; own index stays 0).
    pub bytes_sent: [u64; 3],
    /// Messages this party sent to each party.
    pub messages_sent: [u64; 3],
    /// Communication rounds (latency steps) the protocols ran.
    pub rounds: u64,
    /// Secret values revealed to each party (index = the party that learns them).
    pub opened_to: [u64; 3],
    /// Values whose shares this party handed to the output client (the user), who
    /// reconstructs them outside the three servers.
    pub output_to_client: u64,
}

impl Cost {
    /// Total payload bytes this party sent.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_sent.iter().sum()
    }

    /// Total messages this party sent.
    pub fn messages_total(&self) -> u64 {
        self.messages_sent.iter().sum()
    }

    /// `self - earlier`, for measuring one protocol call.
    pub fn since(&self, earlier: &Cost) -> Cost {
        let d = |a: [u64; 3], b: [u64; 3]| [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
        Cost {
            bytes_sent: d(self.bytes_sent, earlier.bytes_sent),
            messages_sent: d(self.messages_sent, earlier.messages_sent),
            rounds: self.rounds - earlier.rounds,
            opened_to: d(self.opened_to, earlier.opened_to),
            output_to_client: self.output_to_client - earlier.output_to_client,
        }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        for i in 0..3 {
            self.bytes_sent[i] += o.bytes_sent[i];
            self.messages_sent[i] += o.messages_sent[i];
            self.opened_to[i] += o.opened_to[i];
        }
        self.rounds += o.rounds;
        self.output_to_client += o.output_to_client;
    }
}

/// Running totals plus a per-label breakdown, scoped by
/// [`Party::scope`](crate::party::Party::scope).
#[derive(Clone, Debug, Default)]
pub struct CostLedger {
    total: Cost,
    by_label: Vec<(Label, Cost)>,
    /// Index into `by_label` of each open scope, innermost last.
    stack: Vec<usize>,
}

impl CostLedger {
    /// Everything spent since the party was created.
    pub fn total(&self) -> &Cost {
        &self.total
    }

    /// Cost per label path, in order of first use. Each cost is attributed to the
    /// innermost open scope only, so the entries never double count; cost spent
    /// outside any scope appears only in [`total`](Self::total).
    pub fn by_label(&self) -> &[(Label, Cost)] {
        &self.by_label
    }

    /// The cost recorded under `path` (e.g. `"conv1"` or `"unet/conv1"`).
    pub fn label(&self, path: &str) -> Option<&Cost> {
        self.by_label
            .iter()
            .find(|(l, _)| l.as_str() == path)
            .map(|(_, c)| c)
    }

    pub(crate) fn enter(&mut self, label: &str) {
        let mut path = Label::new();
        if let Some(&i) = self.stack.last() {
            push_truncated(&mut path, &self.by_label[i].0);
            push_truncated(&mut path, "/");
        }
        push_truncated(&mut path, label);
        let idx = match self.by_label.iter().position(|(l, _)| *l == path) {
            Some(i) => i,
            None => {
                self.by_label.push((path, Cost::default()));
                self.by_label.len() - 1
            }
        };
        self.stack.push(idx);
    }

    pub(crate) fn leave(&mut self) {
        self.stack.pop();
    }

    fn record(&mut self, f: impl Fn(&mut Cost)) {
        f(&mut self.total);
        if let Some(&i) = self.stack.last() {
            f(&mut self.by_label[i].1);
        }
    }

    pub(crate) fn sent(&mut self, to: PartyId, bytes: usize) {
        let i = to.index();
        self.record(|c| {
            c.bytes_sent[i] += bytes as u64;
            c.messages_sent[i] += 1;
        });
    }

    pub(crate) fn rounds(&mut self, n: u64) {
        self.record(|c| c.rounds += n);
    }

    pub(crate) fn output(&mut self, values: usize) {
        self.record(|c| c.output_to_client += values as u64);
    }

    pub(crate) fn opened(&mut self, to: PartyId, values: usize) {
        let i = to.index();
        self.record(|c| c.opened_to[i] += values as u64);
    }
}

fn push_truncated(dst: &mut Label, s: &str) {
    for ch in s.chars() {
        if dst.push(ch).is_err() {
            return;
        }
    }
}
