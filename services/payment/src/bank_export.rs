//! `ExportBankFile`, streamed (`docs/bank-files.md`, "The export"): a run's batch file of any
//! size in bounded memory, recorded before any byte of it leaves.
//!
//! The file is written **twice** from the run's orders, each time read from `payment_orders`
//! in order-id order, a page of [`PAGE_ORDERS`] at a time ([`read_model::batch_orders`]: one
//! statement read incrementally, with each household's sealed account), each page's accounts
//! opened together and dropped with the page:
//!
//! 1. **the digest pass** ([`first_pass`]): the whole file's SHA-256, its count and total, how
//!    many orders' households have no account, and the SHA-256 of each part the file is cut
//!    into (parts of exactly `payment.bank_file_chunk_bytes`, the last shorter) — 32 bytes a
//!    part, nothing else kept. The aggregate then decides on those facts (the run approved,
//!    its result not recorded, the table's count and total the run's control figures, every
//!    household an account) and the `BankFileExported` event is appended at the version the
//!    run was read at;
//! 2. **the sending pass** ([`send`]), only after that append: the same bytes cut at the same
//!    places, each part sent only if its SHA-256 is the first pass's for it. The orders of a
//!    run never change once it is created; an account could (a household's account changed
//!    between the passes): then the part that differs is not sent and the stream ends
//!    `ABORTED` (export again), so no byte leaves that is not of the file recorded.
//!
//! What is held at once: one page of orders and their opened accounts (and at most two more
//! pages read ahead), one part being
//! filled, the parts' digests, and at most [`PARTS_IN_FLIGHT`] parts waiting for the client.
//!
//! **Payees.** An order pays its household's sealed account, or — when it names a care
//! institution (`care_institution_code`: a 特困 person supported centrally, 集中供养) — that
//! institution's account in force on the export's day ([`Payees::on`], the same day for both
//! passes) in the funds file's `[[institution]]` ([`crate::care_institutions`]); the
//! household's account is then not opened. An institution with no account that day (not in
//! the file, not open yet, closed) is named in the pass's facts and the export is refused
//! (`CommandError::InstitutionUnpayable`): its lines are not written.

use sunshine_platform::ApiError;
use sunshine_platform::server::RpcStream;
use sunshine_proto::v1 as pb;
use tokio::sync::mpsc;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aggregate::RunState;
use crate::bank_files::{Account, BatchLine, BatchWriter, FileParts, Format, PartDigest};
use crate::commands::BatchFacts;
use crate::entitlements::Payee;
use crate::funds::Funds;
use crate::read_model;
use crate::store::PaymentStore;

/// Where an export takes the care institutions' accounts from: the funds file's
/// institutions, on one day (the export's local date).
#[derive(Debug, Clone)]
pub struct Payees {
    pub funds: Arc<Funds>,
    pub on: time::Date,
}

impl Payees {
    pub fn on(funds: Arc<Funds>, on: time::Date) -> Payees {
        Payees { funds, on }
    }
}

/// The largest part one message carries when `payment.bank_file_chunk_bytes` is 0: 1 MiB,
/// far under the 16 MiB message limit.
pub const DEFAULT_PART_BYTES: usize = 1 << 20;
/// Orders read (and accounts opened) at once.
pub const PAGE_ORDERS: usize = 2_000;
/// Parts written ahead of the client: the sending pass waits for it beyond them.
pub const PARTS_IN_FLIGHT: usize = 2;

/// The part size configured (`payment.bank_file_chunk_bytes`), or the default for 0.
pub fn part_bytes(configured: usize) -> usize {
    if configured == 0 {
        DEFAULT_PART_BYTES
    } else {
        configured
    }
}

/// Whole parts of the file, in order, each with its SHA-256.
type Parts = Vec<(Vec<u8>, PartDigest)>;

/// One pass over the run's orders, a page at a time, writing the batch file into parts.
struct BatchPass {
    store: PaymentStore,
    payees: Payees,
    orders: tokio::sync::mpsc::Receiver<Result<Vec<read_model::BatchOrder>, sqlx::Error>>,
    writer: BatchWriter,
    parts: FileParts,
    count: u64,
    total_fen: i64,
    without_account: u64,
    /// Institution code → why it has no account on the payees' day.
    unpayable: BTreeMap<String, String>,
}

impl BatchPass {
    fn new(
        store: PaymentStore,
        payees: Payees,
        run_id: &str,
        format: Format,
        part_bytes: usize,
    ) -> BatchPass {
        let orders = read_model::batch_orders(store.pool().clone(), run_id.to_owned(), PAGE_ORDERS);
        BatchPass {
            store,
            payees,
            orders,
            writer: BatchWriter::new(format),
            parts: FileParts::new(part_bytes),
            count: 0,
            total_fen: 0,
            without_account: 0,
            unpayable: BTreeMap::new(),
        }
    }

    /// The account `order` pays, if it names a care institution: `Some(None)` when that
    /// institution has none on the payees' day (noted); `None` for a household's order.
    fn institution_account(&mut self, order: &read_model::BatchOrder) -> Option<Option<Account>> {
        let Payee::CareInstitution(code) = Payee::of_code(&order.care_institution_code) else {
            return None;
        };
        match self
            .payees
            .funds
            .institutions()
            .account_on(&code, self.payees.on)
        {
            Ok(account) => Some(Some(Account {
                number: account.account_number.clone(),
                holder_name: account.name.clone(),
            })),
            Err(why) => {
                self.unpayable
                    .entry(code)
                    .or_insert_with(|| why.to_string());
                Some(None)
            }
        }
    }

    /// The whole parts the next page of orders completes; `None` once every order is read.
    async fn next(&mut self) -> Result<Option<Parts>, ApiError> {
        let Some(page) = self.orders.recv().await else {
            return Ok(None);
        };
        let page = page.map_err(ApiError::internal)?;
        // A household's sealed account is opened only for the orders that pay it.
        let sealed: Vec<(&str, Option<&[u8]>)> = page
            .iter()
            .map(|order| {
                let sealed = if order.care_institution_code.is_empty() {
                    order.sealed_account.as_deref()
                } else {
                    None
                };
                (order.household_id.as_str(), sealed)
            })
            .collect();
        let accounts = self.store.open_accounts(&sealed).await?;
        for (order, household_account) in page.iter().zip(accounts) {
            self.count += 1;
            self.total_fen = self
                .total_fen
                .checked_add(order.amount_fen)
                .ok_or_else(|| {
                    ApiError::internal(std::io::Error::other("a run's total out of range"))
                })?;
            let account = match self.institution_account(order) {
                Some(Some(account)) => account,
                Some(None) => continue,
                None => {
                    let Some(account) = household_account else {
                        self.without_account += 1;
                        continue;
                    };
                    account
                }
            };
            // Once an order lacks an account the file is refused: its lines are not written.
            if self.without_account == 0 && self.unpayable.is_empty() {
                let line = BatchLine {
                    account: account.number,
                    account_name: account.holder_name,
                    amount_fen: order.amount_fen,
                    order_id: order.order_id.clone(),
                };
                self.writer
                    .line(&line, self.parts.buffer())
                    .map_err(|error| {
                        ApiError::internal(std::io::Error::other(error.to_string()))
                    })?;
            }
        }
        Ok(Some(self.parts.full_parts()))
    }

    /// The facts of the pass, and the parts its control line completes (the last shorter).
    fn finish(mut self) -> Result<(BatchFacts, Parts), ApiError> {
        self.writer
            .finish(self.parts.buffer())
            .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))?;
        let mut parts = self.parts.full_parts();
        let (last, sha256, _) = self.parts.finish();
        parts.extend(last);
        Ok((
            BatchFacts {
                sha256,
                count: self.count,
                total_fen: self.total_fen,
                without_account: self.without_account,
                payees_on: self.payees.on,
                unpayable_institutions: self.unpayable,
            },
            parts,
        ))
    }
}

/// What the digest pass found: the facts the aggregate decides on, the file's length, and
/// each part's SHA-256 in order.
#[derive(Debug, Clone)]
pub struct FirstPass {
    pub batch: BatchFacts,
    /// Where it took the care institutions' accounts from, and on which day.
    pub payees: Payees,
    pub file_bytes: u64,
    pub part_digests: Vec<PartDigest>,
}

/// The digest pass (module docs): the run's file written and digested, nothing of it kept.
pub async fn first_pass(
    store: &PaymentStore,
    payees: Payees,
    run: &RunState,
    format: Format,
    part_bytes: usize,
) -> Result<FirstPass, ApiError> {
    let mut pass = BatchPass::new(
        store.clone(),
        payees.clone(),
        &run.run_id,
        format,
        part_bytes,
    );
    let mut part_digests = Vec::new();
    let mut file_bytes = 0_u64;
    while let Some(parts) = pass.next().await? {
        for (part, digest) in parts {
            file_bytes += part.len() as u64;
            part_digests.push(digest);
        }
    }
    let (batch, parts) = pass.finish()?;
    for (part, digest) in parts {
        file_bytes += part.len() as u64;
        part_digests.push(digest);
    }
    Ok(FirstPass {
        batch,
        payees,
        file_bytes,
        part_digests,
    })
}

/// Why the sending pass stopped before the end: a part not the first pass's.
fn changed() -> tonic::Status {
    tonic::Status::aborted(
        "the run's file changed while it was sent (a household's payment account changed); export again",
    )
}

/// The sending pass (module docs), on a task of its own: the file's parts as the stream's
/// messages, the first with the summary, each checked against `first`. The client's pace
/// bounds it: at most [`PARTS_IN_FLIGHT`] parts wait. The institutions' accounts are taken
/// on the first pass's day.
pub fn send(
    store: PaymentStore,
    run_id: String,
    format: Format,
    part_bytes: usize,
    first: FirstPass,
    total: Option<pb::Money>,
    count: u32,
) -> RpcStream<pb::ExportBankFileResponse> {
    let (sender, receiver) = mpsc::channel(PARTS_IN_FLIGHT);
    tokio::spawn(async move {
        let mut pass = BatchPass::new(store, first.payees.clone(), &run_id, format, part_bytes);
        let mut sent = 0_usize;
        let mut summary = Some(pb::ExportBankFileResponse {
            file: Vec::new(),
            sha256: first.batch.sha256.clone(),
            count,
            total,
            file_bytes: first.file_bytes,
        });
        let send_part = |sent: &mut usize,
                         summary: &mut Option<pb::ExportBankFileResponse>,
                         part: Vec<u8>,
                         digest: PartDigest|
         -> Result<pb::ExportBankFileResponse, tonic::Status> {
            if first.part_digests.get(*sent) != Some(&digest) {
                return Err(changed());
            }
            *sent += 1;
            let mut message = summary.take().unwrap_or_default();
            message.file = part;
            Ok(message)
        };
        loop {
            let parts = match pass.next().await {
                Ok(Some(parts)) => parts,
                Ok(None) => break,
                Err(error) => {
                    let _ = sender.send(Err(tonic::Status::from(error))).await;
                    return;
                }
            };
            for (part, digest) in parts {
                let message = send_part(&mut sent, &mut summary, part, digest);
                let stop = message.is_err();
                if sender.send(message).await.is_err() || stop {
                    return;
                }
            }
        }
        let parts = match pass.finish() {
            Ok((_, parts)) => parts,
            Err(error) => {
                let _ = sender.send(Err(tonic::Status::from(error))).await;
                return;
            }
        };
        for (part, digest) in parts {
            let message = send_part(&mut sent, &mut summary, part, digest);
            let stop = message.is_err();
            if sender.send(message).await.is_err() || stop {
                return;
            }
        }
        if sent != first.part_digests.len() {
            let _ = sender.send(Err(changed())).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
