//! The bank files, byte by byte as `docs/bank-files.md` lays them out (pure: no I/O): the
//! batch file a run's orders are sent to the bank in ([`write_batch`]), and the bank's result
//! file (回盘) read back ([`parse_result`]), and its later returns file (退票,
//! [`parse_returns`]: the result's layout, every line flagged `B`), in two formats ([`Format`]): comma-separated
//! UTF-8, and fixed-width GBK. Every line ends in CRLF; the last is the control line (count
//! and total in fen).
//!
//! A result file is read whole: every line that is not what the layout says is a violation
//! named `lines[i]` (from 0), all of them at once; whether the lines match the run's orders is
//! the aggregate's decision, not the file's.
//!
//! **Accounts.** Each order line carries its household's payment account as intake sealed it
//! (`HouseholdRegistered.sealed_payment_account`, an encoded `PaymentAccount`), opened for the
//! file only ([`Account`], whose `Debug` shows nothing of it): the number and the holder's
//! name. The batch is written a line at a time ([`BatchWriter`]), so a run of any size is
//! written in parts ([`write_batch`] is the whole file at once).

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};
use sunshine_domain::FieldViolation;
use sunshine_proto::v1 as pb;

/// The largest result file read: 8 MiB, about 55,000 lines of either layout (`docs/limits.md`).
pub const MAX_RESULT_FILE_BYTES: usize = 8 * 1024 * 1024;
/// The longest bank reason kept, in characters (and in GBK bytes for the fixed layout).
pub const MAX_REASON_CHARS: usize = 60;

/// Fixed-width batch line: type 1, account 32, name 60, amount 15, order id 36 = 144 bytes.
const ACCOUNT_WIDTH: usize = 32;
const NAME_WIDTH: usize = 60;
const AMOUNT_WIDTH: usize = 15;
const ORDER_ID_WIDTH: usize = 36;
const COUNT_WIDTH: usize = 10;
const REASON_WIDTH: usize = 60;
const BATCH_LINE_BYTES: usize = 1 + ACCOUNT_WIDTH + NAME_WIDTH + AMOUNT_WIDTH + ORDER_ID_WIDTH;
/// Fixed-width result line: type 1, order id 36, account 32, amount 15, flag 1, reason 60.
const RESULT_LINE_BYTES: usize =
    1 + ORDER_ID_WIDTH + ACCOUNT_WIDTH + AMOUNT_WIDTH + 1 + REASON_WIDTH;
/// The largest amount either layout carries: 15 digits of fen.
const MAX_AMOUNT_FEN: i64 = 999_999_999_999_999;

/// The two layouts a bank takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CsvUtf8,
    FixedGbk,
}

impl Format {
    /// The request's format; `None` for unspecified or unknown.
    pub fn from_proto(value: i32) -> Option<Format> {
        match pb::BankFileFormat::try_from(value).ok()? {
            pb::BankFileFormat::CsvUtf8 => Some(Format::CsvUtf8),
            pb::BankFileFormat::FixedGbk => Some(Format::FixedGbk),
            pb::BankFileFormat::Unspecified => None,
        }
    }

    /// Its name in events and answers (`BANK_FILE_FORMAT_…`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CsvUtf8 => pb::BankFileFormat::CsvUtf8.as_str_name(),
            Format::FixedGbk => pb::BankFileFormat::FixedGbk.as_str_name(),
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        [Format::CsvUtf8, Format::FixedGbk]
            .into_iter()
            .find(|format| format.as_str() == name)
    }
}

/// A household's payment account, opened from intake's sealed `PaymentAccount` for a bank file
/// or a match against the bank's answer; held in memory only, and never printed (`Debug`
/// shows nothing of it).
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    pub holder_name: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Account(..)")
    }
}

impl Account {
    /// The account of an opened `PaymentAccount`'s bytes; `None` for bytes that are no
    /// account or one without a number.
    pub fn from_opened(bytes: &[u8]) -> Option<Account> {
        use prost::Message as _;
        let account = pb::PaymentAccount::decode(bytes).ok()?;
        if account.account_number.is_empty() {
            return None;
        }
        Some(Account {
            number: account.account_number,
            holder_name: account.holder_name,
        })
    }

    /// The number's last 4 characters (the 纪委's export; all of it when shorter).
    pub fn tail(&self) -> String {
        let chars: Vec<char> = self.number.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }
}

/// The account numbers the bank's answer is matched against: each household's, by household
/// id, and each care institution's (by its code) that the run's orders pay; `Debug` shows only
/// how many.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccountNumbers {
    pub households: BTreeMap<String, String>,
    pub institutions: BTreeMap<String, String>,
}

impl std::fmt::Debug for AccountNumbers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "AccountNumbers({} households, {} institutions)",
            self.households.len(),
            self.institutions.len()
        )
    }
}

impl AccountNumbers {
    /// The household's account number, if it has an account.
    pub fn of(&self, household_id: &str) -> Option<&str> {
        self.households.get(household_id).map(String::as_str)
    }

    /// The account number `order` pays: its care institution's, if it names one, else its
    /// household's; `None` when that payee has no account.
    pub fn of_order(&self, order: &pb::PaymentOrder) -> Option<&str> {
        if order.care_institution_code.is_empty() {
            self.of(&order.household_id)
        } else {
            self.institutions
                .get(&order.care_institution_code)
                .map(String::as_str)
        }
    }
}

/// One order as the batch file carries it (`Debug` shows nothing of the account).
#[derive(Clone, PartialEq, Eq)]
pub struct BatchLine {
    pub account: String,
    pub account_name: String,
    pub amount_fen: i64,
    pub order_id: String,
}

impl std::fmt::Debug for BatchLine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BatchLine")
            .field("amount_fen", &self.amount_fen)
            .field("order_id", &self.order_id)
            .finish_non_exhaustive()
    }
}

impl BatchLine {
    /// The order's line, paid to its household's `account`.
    pub fn of(order: &pb::PaymentOrder, account: &Account) -> BatchLine {
        BatchLine {
            account: account.number.clone(),
            account_name: account.holder_name.clone(),
            amount_fen: order.amount.as_ref().map_or(0, |money| money.fen),
            order_id: order.order_id.clone(),
        }
    }
}

/// One line of the bank's result file (`Debug` shows nothing of the account).
#[derive(Clone, PartialEq, Eq)]
pub struct ResultLine {
    pub order_id: String,
    pub account: String,
    pub amount_fen: i64,
    pub paid: bool,
    pub reason: String,
}

impl std::fmt::Debug for ResultLine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ResultLine")
            .field("order_id", &self.order_id)
            .field("amount_fen", &self.amount_fen)
            .field("paid", &self.paid)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// A result file read: its order lines by line number, and its control line's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFile {
    pub lines: Vec<(usize, ResultLine)>,
    /// The control line's number and figures.
    pub control_line: usize,
    pub control_count: u64,
    pub control_total_fen: i64,
}

/// A batch that cannot be written in the layout (a field that does not fit or is not
/// encodable); never a bank's fault, so an internal error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the bank file cannot carry {what} of order {order_id}")]
pub struct WriteError {
    pub order_id: String,
    pub what: &'static str,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The violation of line `index`.
pub fn line_violation(index: usize, description: impl Into<String>) -> FieldViolation {
    FieldViolation {
        field: format!("lines[{index}]"),
        description: description.into(),
    }
}

// ---- writing ----

fn csv_field_ok(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c == ',' || c == '"' || c.is_control())
}

/// `text` in GBK, right-padded with spaces to exactly `width` bytes; `None` if it does not fit
/// or has a character GBK lacks.
fn gbk_padded(text: &str, width: usize) -> Option<Vec<u8>> {
    if text.chars().any(char::is_control) {
        return None;
    }
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    if unmappable || bytes.len() > width {
        return None;
    }
    let mut field = bytes.into_owned();
    field.resize(width, b' ');
    Some(field)
}

/// Whether `name` can be an order line's account name in both layouts (a CSV field, and at
/// most 60 GBK bytes): what the institutions file's names are checked against.
pub fn fits_account_name(name: &str) -> bool {
    csv_field_ok(name) && gbk_padded(name, NAME_WIDTH).is_some()
}

/// Whether `number` can be an order line's account in both layouts (a CSV field, and at most
/// 32 bytes).
pub fn fits_account(number: &str) -> bool {
    csv_field_ok(number) && gbk_padded(number, ACCOUNT_WIDTH).is_some()
}

fn digits(value: u64, width: usize) -> Option<Vec<u8>> {
    let text = format!("{value:0width$}");
    (text.len() == width).then(|| text.into_bytes())
}

/// The batch file of `lines` (in the order given) in `format`, its control line last.
pub fn write_batch(format: Format, lines: &[BatchLine]) -> Result<Vec<u8>, WriteError> {
    let mut file = Vec::with_capacity(lines.len() * (BATCH_LINE_BYTES + 2) + 64);
    let mut writer = BatchWriter::new(format);
    for line in lines {
        writer.line(line, &mut file)?;
    }
    writer.finish(&mut file)?;
    Ok(file)
}

/// The batch file written a line at a time, into whatever buffer the caller gives: the same
/// bytes as [`write_batch`] of all the lines, however they are split.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    format: Format,
    count: u64,
    total: i64,
}

impl BatchWriter {
    pub fn new(format: Format) -> BatchWriter {
        BatchWriter {
            format,
            count: 0,
            total: 0,
        }
    }

    /// Appends `line`'s bytes to `file` (nothing, if it cannot be written).
    pub fn line(&mut self, line: &BatchLine, file: &mut Vec<u8>) -> Result<(), WriteError> {
        let refuse = |what| WriteError {
            order_id: line.order_id.clone(),
            what,
        };
        let amount = u64::try_from(line.amount_fen)
            .ok()
            .filter(|fen| *fen <= MAX_AMOUNT_FEN as u64)
            .ok_or_else(|| refuse("the amount"))?;
        let total = self
            .total
            .checked_add(line.amount_fen)
            .filter(|total| *total <= MAX_AMOUNT_FEN)
            .ok_or_else(|| refuse("the total"))?;
        match self.format {
            Format::CsvUtf8 => {
                for (text, what) in [
                    (&line.account, "the account"),
                    (&line.account_name, "the account name"),
                    (&line.order_id, "the order id"),
                ] {
                    if !csv_field_ok(text) {
                        return Err(refuse(what));
                    }
                }
                file.extend_from_slice(
                    format!(
                        "D,{},{},{},{}\r\n",
                        line.account, line.account_name, amount, line.order_id
                    )
                    .as_bytes(),
                );
            }
            Format::FixedGbk => {
                let account = gbk_padded(&line.account, ACCOUNT_WIDTH)
                    .ok_or_else(|| refuse("the account"))?;
                let name = gbk_padded(&line.account_name, NAME_WIDTH)
                    .ok_or_else(|| refuse("the account name"))?;
                let amount = digits(amount, AMOUNT_WIDTH).ok_or_else(|| refuse("the amount"))?;
                if line.order_id.len() != ORDER_ID_WIDTH || !line.order_id.is_ascii() {
                    return Err(refuse("the order id"));
                }
                file.push(b'D');
                file.extend(account);
                file.extend(name);
                file.extend(amount);
                file.extend_from_slice(line.order_id.as_bytes());
                file.extend_from_slice(b"\r\n");
            }
        }
        self.total = total;
        self.count += 1;
        Ok(())
    }

    /// Appends the control line to `file`: the count and total of the lines written.
    pub fn finish(self, file: &mut Vec<u8>) -> Result<(u64, i64), WriteError> {
        write_control(file, self.format, self.count, self.total, BATCH_LINE_BYTES).ok_or(
            WriteError {
                order_id: String::new(),
                what: "the count",
            },
        )?;
        Ok((self.count, self.total))
    }
}

/// A file cut into parts of exactly `part_bytes` (the last one shorter), as its bytes come,
/// and its SHA-256 and each part's computed as they go: the export's two passes cut the same
/// bytes at the same places, and the second checks each part against the first's digest of it.
#[derive(Debug, Clone)]
pub struct FileParts {
    part_bytes: usize,
    pending: Vec<u8>,
    whole: Sha256,
    length: u64,
}

/// A part's SHA-256.
pub type PartDigest = [u8; 32];

impl FileParts {
    pub fn new(part_bytes: usize) -> FileParts {
        FileParts {
            part_bytes: part_bytes.max(1),
            pending: Vec::with_capacity(part_bytes.max(1)),
            whole: Sha256::new(),
            length: 0,
        }
    }

    /// The buffer the next bytes are written into; [`FileParts::full_parts`] takes the whole
    /// parts out of it.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// The whole parts written so far, in order, each with its digest.
    pub fn full_parts(&mut self) -> Vec<(Vec<u8>, PartDigest)> {
        let mut parts = Vec::new();
        while self.pending.len() >= self.part_bytes {
            let rest = self.pending.split_off(self.part_bytes);
            let part = std::mem::replace(&mut self.pending, rest);
            parts.push(self.take(part));
        }
        parts
    }

    /// The last part (none if the file ended on a part's end), the file's SHA-256 (lowercase
    /// hex) and its length.
    pub fn finish(mut self) -> (Option<(Vec<u8>, PartDigest)>, String, u64) {
        let mut last = None;
        if !self.pending.is_empty() {
            let part = std::mem::take(&mut self.pending);
            last = Some(self.take(part));
        }
        (last, hex::encode(self.whole.finalize()), self.length)
    }

    fn take(&mut self, part: Vec<u8>) -> (Vec<u8>, PartDigest) {
        self.whole.update(&part);
        self.length += part.len() as u64;
        let digest: PartDigest = Sha256::digest(&part).into();
        (part, digest)
    }
}

fn write_control(
    file: &mut Vec<u8>,
    format: Format,
    count: u64,
    total: i64,
    line_bytes: usize,
) -> Option<()> {
    match format {
        Format::CsvUtf8 => file.extend_from_slice(format!("T,{count},{total}\r\n").as_bytes()),
        Format::FixedGbk => {
            let mut line = vec![b'T'];
            line.extend(digits(count, COUNT_WIDTH)?);
            line.extend(digits(u64::try_from(total).ok()?, AMOUNT_WIDTH)?);
            line.resize(line_bytes, b' ');
            file.extend(line);
            file.extend_from_slice(b"\r\n");
        }
    }
    Some(())
}

/// A result file of `lines` in `format` with the given control figures, as a bank writes it
/// (tests, and the layout's example in `docs/bank-files.md`). `None` if a field does not fit.
pub fn write_result(
    format: Format,
    lines: &[ResultLine],
    control_count: u64,
    control_total_fen: i64,
) -> Option<Vec<u8>> {
    write_lines(format, lines, control_count, control_total_fen, |line| {
        if line.paid { "S" } else { "F" }
    })
}

/// The lines of a result or returns file, each with its flag, then the control line.
fn write_lines(
    format: Format,
    lines: &[ResultLine],
    control_count: u64,
    control_total_fen: i64,
    flag_of: impl Fn(&ResultLine) -> &'static str,
) -> Option<Vec<u8>> {
    let mut file = Vec::new();
    for line in lines {
        let flag = flag_of(line);
        match format {
            Format::CsvUtf8 => file.extend_from_slice(
                format!(
                    "R,{},{},{},{flag},{}\r\n",
                    line.order_id, line.account, line.amount_fen, line.reason
                )
                .as_bytes(),
            ),
            Format::FixedGbk => {
                file.push(b'R');
                file.extend(gbk_padded(&line.order_id, ORDER_ID_WIDTH)?);
                file.extend(gbk_padded(&line.account, ACCOUNT_WIDTH)?);
                file.extend(digits(u64::try_from(line.amount_fen).ok()?, AMOUNT_WIDTH)?);
                file.extend_from_slice(flag.as_bytes());
                file.extend(gbk_padded(&line.reason, REASON_WIDTH)?);
                file.extend_from_slice(b"\r\n");
            }
        }
    }
    write_control(
        &mut file,
        format,
        control_count,
        control_total_fen,
        RESULT_LINE_BYTES,
    )?;
    Some(file)
}

// ---- reading ----

/// The file's complete lines without their CRLF, and the number of a last line cut short
/// (no CRLF: the file is truncated), which is not read.
fn split_lines(bytes: &[u8]) -> (Vec<&[u8]>, Option<usize>) {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|pair| pair == b"\r\n") else {
            let cut_short = lines.len();
            return (lines, Some(cut_short));
        };
        lines.push(&rest[..end]);
        rest = &rest[end + 2..];
    }
    (lines, None)
}

/// A number of fen: 1 to 15 ASCII digits.
fn parse_digits(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > AMOUNT_WIDTH || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn decode_gbk(bytes: &[u8]) -> Option<String> {
    encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.trim_end_matches(' ').to_owned())
}

/// One line of either kind, decoded: an order's result, or the control line.
enum Parsed {
    Result(ResultLine),
    Control { count: u64, total_fen: i64 },
}

fn parse_csv_line(bytes: &[u8], kind: FileKind) -> Result<Parsed, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    if text.chars().any(char::is_control) {
        return Err("has a control character".into());
    }
    if let Some(control) = text.strip_prefix("T,") {
        let fields: Vec<&str> = control.split(',').collect();
        let [count, total] = fields[..] else {
            return Err("a control line is T,count,total".into());
        };
        let count = parse_digits(count).ok_or("the control count is not a number")?;
        let total = parse_digits(total).ok_or("the control total is not a number of fen")?;
        return Ok(Parsed::Control {
            count: count.unsigned_abs(),
            total_fen: total,
        });
    }
    let Some(result) = text.strip_prefix("R,") else {
        return Err("neither a result line (R,…) nor the control line (T,…)".into());
    };
    let fields: Vec<&str> = result.splitn(5, ',').collect();
    let [order_id, account, amount, flag, reason] = fields[..] else {
        return Err("a result line is R,order id,account,amount,flag,reason".into());
    };
    result_line(order_id, account, amount, flag, reason, kind)
}

fn parse_fixed_line(bytes: &[u8], kind: FileKind) -> Result<Parsed, String> {
    if bytes.first() == Some(&b'T') {
        if bytes.len() != RESULT_LINE_BYTES {
            return Err(format!(
                "{} bytes, not the layout's {RESULT_LINE_BYTES}",
                bytes.len()
            ));
        }
        let text = decode_gbk(bytes).ok_or("not GBK")?;
        if text.len() != 1 + COUNT_WIDTH + AMOUNT_WIDTH {
            return Err("a control line is T, the count, the total, then spaces".into());
        }
        let count = text.get(1..1 + COUNT_WIDTH).and_then(parse_digits);
        let total = text
            .get(1 + COUNT_WIDTH..1 + COUNT_WIDTH + AMOUNT_WIDTH)
            .and_then(parse_digits);
        let (Some(count), Some(total)) = (count, total) else {
            return Err("the control count or total is not a number".into());
        };
        return Ok(Parsed::Control {
            count: count.unsigned_abs(),
            total_fen: total,
        });
    }
    if bytes.first() != Some(&b'R') {
        return Err("neither a result line (R) nor the control line (T)".into());
    }
    if bytes.len() != RESULT_LINE_BYTES {
        return Err(format!(
            "{} bytes, not the layout's {RESULT_LINE_BYTES}",
            bytes.len()
        ));
    }
    let mut at = 1;
    let mut field = |width: usize| {
        let slice = &bytes[at..at + width];
        at += width;
        decode_gbk(slice)
    };
    let order_id = field(ORDER_ID_WIDTH);
    let account = field(ACCOUNT_WIDTH);
    let amount = field(AMOUNT_WIDTH);
    let flag = field(1);
    let reason = field(REASON_WIDTH);
    let (Some(order_id), Some(account), Some(amount), Some(flag), Some(reason)) =
        (order_id, account, amount, flag, reason)
    else {
        return Err("not GBK".into());
    };
    if [&order_id, &account, &amount, &flag, &reason]
        .iter()
        .any(|text| text.chars().any(char::is_control))
    {
        return Err("has a control character".into());
    }
    result_line(&order_id, &account, &amount, &flag, &reason, kind)
}

fn result_line(
    order_id: &str,
    account: &str,
    amount: &str,
    flag: &str,
    reason: &str,
    kind: FileKind,
) -> Result<Parsed, String> {
    if order_id.is_empty() || account.is_empty() {
        return Err("the order id and the account are required".into());
    }
    let amount_fen = parse_digits(amount).ok_or("the amount is not a number of fen")?;
    let paid = match (kind, flag) {
        (FileKind::Result, "S") => true,
        (FileKind::Result, "F") => false,
        (FileKind::Result, _) => return Err("the flag is S (paid) or F (failed)".into()),
        (FileKind::Returns, RETURNED_FLAG) => false,
        (FileKind::Returns, _) => {
            return Err("the flag of a returns file's line is B (returned)".into());
        }
    };
    if !paid && reason.is_empty() {
        return Err(match kind {
            FileKind::Result => "a failed line gives the bank's reason".into(),
            FileKind::Returns => "a returned line gives the bank's reason".into(),
        });
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(format!("the reason is over {MAX_REASON_CHARS} characters"));
    }
    Ok(Parsed::Result(ResultLine {
        order_id: order_id.to_owned(),
        account: account.to_owned(),
        amount_fen,
        paid,
        reason: reason.to_owned(),
    }))
}

/// Reads a result file of `format`: every line's violation at once (`lines[i]`), including a
/// duplicate order, a control line whose figures are not the file's, and a file without one.
pub fn parse_result(format: Format, bytes: &[u8]) -> Result<ResultFile, Vec<FieldViolation>> {
    read_lines(format, bytes, FileKind::Result)
}

/// A result file or a returns file, read by the same rules: every line's violation at once.
fn read_lines(
    format: Format,
    bytes: &[u8],
    kind: FileKind,
) -> Result<ResultFile, Vec<FieldViolation>> {
    let (raw_lines, cut_short) = split_lines(bytes);
    let mut violations = Vec::new();
    let mut lines = Vec::new();
    let mut control: Option<(usize, u64, i64)> = None;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, raw) in raw_lines.iter().enumerate() {
        let parsed = match format {
            Format::CsvUtf8 => parse_csv_line(raw, kind),
            Format::FixedGbk => parse_fixed_line(raw, kind),
        };
        if let Some((control_index, _, _)) = control {
            violations.push(line_violation(
                index,
                format!("after the control line (lines[{control_index}])"),
            ));
            continue;
        }
        match parsed {
            Err(why) => violations.push(line_violation(index, why)),
            Ok(Parsed::Control { count, total_fen }) => control = Some((index, count, total_fen)),
            Ok(Parsed::Result(line)) => {
                if let Some(first) = seen.get(&line.order_id) {
                    violations.push(line_violation(
                        index,
                        format!("a second line of the order of lines[{first}]"),
                    ));
                    continue;
                }
                seen.insert(line.order_id.clone(), index);
                lines.push((index, line));
            }
        }
    }
    if let Some(index) = cut_short {
        violations.push(line_violation(
            index,
            "does not end in CRLF: the file is truncated",
        ));
    }
    let Some((control_line, control_count, control_total_fen)) = control else {
        violations.push(line_violation(
            raw_lines.len() + usize::from(cut_short.is_some()),
            "missing: the file ends without its control line (truncated)",
        ));
        return Err(violations);
    };
    // Against every result line of the file, the unreadable ones too: a control line is
    // right or wrong whatever else is.
    let result_lines = raw_lines[..control_line].len();
    let total = lines
        .iter()
        .try_fold(0_i64, |total, (_, line)| total.checked_add(line.amount_fen));
    if u64::try_from(result_lines).ok() != Some(control_count) {
        violations.push(line_violation(
            control_line,
            format!("the control count is {control_count}; the file has {result_lines} lines"),
        ));
    } else if violations.is_empty() && total != Some(control_total_fen) {
        violations.push(line_violation(
            control_line,
            "the control total is not the sum of the lines' amounts",
        ));
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(ResultFile {
        lines,
        control_line,
        control_count,
        control_total_fen,
    })
}

// ---- returns (退票) ----
//
// The bank's returns file: orders it paid and later returned (account closed, frozen…). Its
// layout is the result file's, line for line and byte for byte, in the run's last export's
// format, with one difference: every order line's flag is `B` (returned) and gives the bank's
// reason; the control line counts and sums the returned lines only. A result file is thus
// never read as a returns file (its flags are `S`/`F`), nor the other way round.

/// The flag of a returned order's line.
pub const RETURNED_FLAG: &str = "B";

/// Which file the lines are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Result,
    Returns,
}

/// Reads a returns file of `format` (its lines' `paid` is false, `reason` the bank's): every
/// line's violation at once, as [`parse_result`].
pub fn parse_returns(format: Format, bytes: &[u8]) -> Result<ResultFile, Vec<FieldViolation>> {
    read_lines(format, bytes, FileKind::Returns)
}

/// A returns file of `lines` in `format` with the given control figures, as a bank writes it
/// (tests, and the layout in `docs/bank-files.md`). `None` if a field does not fit.
pub fn write_returns(
    format: Format,
    lines: &[ResultLine],
    control_count: u64,
    control_total_fen: i64,
) -> Option<Vec<u8>> {
    write_lines(format, lines, control_count, control_total_fen, |_| {
        RETURNED_FLAG
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod returns_tests {
    use super::*;

    fn returned(order: char, fen: i64) -> ResultLine {
        ResultLine {
            order_id: format!("0190f3c4-0000-5000-8000-00000000000{order}"),
            account: "9999012345678901234".into(),
            amount_fen: fen,
            paid: false,
            reason: "账户已销户".into(),
        }
    }

    #[test]
    fn a_returns_file_round_trips_in_both_formats() {
        let lines = vec![returned('a', 80_000), returned('b', 65_000)];
        for format in [Format::CsvUtf8, Format::FixedGbk] {
            let file = write_returns(format, &lines, 2, 145_000).unwrap();
            let read = parse_returns(format, &file).unwrap();
            let back: Vec<ResultLine> = read.lines.into_iter().map(|(_, line)| line).collect();
            assert_eq!(back, lines);
            assert_eq!((read.control_line, read.control_count), (2, 2));
        }
        let csv = write_returns(Format::CsvUtf8, &lines[..1], 1, 80_000).unwrap();
        assert_eq!(
            std::str::from_utf8(&csv).unwrap(),
            "R,0190f3c4-0000-5000-8000-00000000000a,9999012345678901234,80000,B,账户已销户\r\nT,1,80000\r\n"
        );
        let gbk = write_returns(Format::FixedGbk, &lines, 2, 145_000).unwrap();
        assert_eq!(gbk.len(), 3 * (RESULT_LINE_BYTES + 2));
    }

    #[test]
    fn a_result_file_is_no_returns_file_and_a_returned_line_gives_its_reason() {
        let mut lines = vec![returned('a', 80_000), returned('b', 65_000)];
        for format in [Format::CsvUtf8, Format::FixedGbk] {
            let result = write_result(format, &lines, 2, 145_000).unwrap();
            let fields: Vec<String> = parse_returns(format, &result)
                .unwrap_err()
                .into_iter()
                .map(|violation| violation.field)
                .collect();
            assert_eq!(fields, ["lines[0]", "lines[1]"]);
            let returns = write_returns(format, &lines, 2, 145_000).unwrap();
            assert!(parse_result(format, &returns).is_err());
        }
        lines[1].reason.clear();
        let file = write_returns(Format::CsvUtf8, &lines, 2, 145_000).unwrap();
        let violations = parse_returns(Format::CsvUtf8, &file).unwrap_err();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "lines[1]");
        assert!(violations[0].description.contains("reason"));
    }

    #[test]
    fn a_returns_file_with_wrong_totals_or_truncated_is_refused_on_its_line() {
        let lines = vec![returned('a', 80_000), returned('b', 65_000)];
        let wrong = write_returns(Format::CsvUtf8, &lines, 2, 145_001).unwrap();
        let fields = |violations: Vec<FieldViolation>| -> Vec<String> {
            violations.into_iter().map(|v| v.field).collect()
        };
        assert_eq!(
            fields(parse_returns(Format::CsvUtf8, &wrong).unwrap_err()),
            ["lines[2]"]
        );
        let good = write_returns(Format::FixedGbk, &lines, 2, 145_000).unwrap();
        let cut = &good[..2 * (RESULT_LINE_BYTES + 2)];
        assert_eq!(
            fields(parse_returns(Format::FixedGbk, cut).unwrap_err()),
            ["lines[2]"]
        );
        let mut duplicate = lines.clone();
        duplicate.push(lines[0].clone());
        let file = write_returns(Format::CsvUtf8, &duplicate, 3, 225_000).unwrap();
        assert_eq!(
            fields(parse_returns(Format::CsvUtf8, &file).unwrap_err()),
            ["lines[2]"]
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ORDER_A: &str = "0190f3c4-0000-5000-8000-00000000000a";
    const ORDER_B: &str = "0190f3c4-0000-5000-8000-00000000000b";

    fn batch() -> Vec<BatchLine> {
        vec![
            BatchLine {
                account: "6222020200001234567".into(),
                account_name: "张三".into(),
                amount_fen: 80_000,
                order_id: ORDER_A.into(),
            },
            BatchLine {
                account: "6222020200007654321".into(),
                account_name: "李四".into(),
                amount_fen: 65_000,
                order_id: ORDER_B.into(),
            },
        ]
    }

    fn results() -> Vec<ResultLine> {
        vec![
            ResultLine {
                order_id: ORDER_A.into(),
                account: "6222020200001234567".into(),
                amount_fen: 80_000,
                paid: true,
                reason: String::new(),
            },
            ResultLine {
                order_id: ORDER_B.into(),
                account: "6222020200007654321".into(),
                amount_fen: 65_000,
                paid: false,
                reason: "账户已销户".into(),
            },
        ]
    }

    fn fields(violations: &[FieldViolation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn the_csv_batch_is_the_layout_byte_for_byte() {
        let file = write_batch(Format::CsvUtf8, &batch()).unwrap();
        let expected = format!(
            "D,6222020200001234567,张三,80000,{ORDER_A}\r\nD,6222020200007654321,李四,65000,{ORDER_B}\r\nT,2,145000\r\n"
        );
        assert_eq!(file, expected.as_bytes());
    }

    #[test]
    fn the_fixed_batch_is_gbk_in_fixed_widths() {
        let file = write_batch(Format::FixedGbk, &batch()).unwrap();
        let lines: Vec<&[u8]> = file.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 4, "three lines and the end");
        assert!(lines[3].is_empty());
        for line in &lines[..3] {
            assert_eq!(line.len(), BATCH_LINE_BYTES + 1, "144 bytes and CR");
            assert_eq!(line.last(), Some(&b'\r'));
        }
        let (zhang_san, _, unmappable) = encoding_rs::GBK.encode("张三");
        assert!(!unmappable);
        // 张 D5C5, 三 C8FD in GBK.
        assert_eq!(&*zhang_san, &[0xD5, 0xC5, 0xC8, 0xFD]);
        let line = lines[0];
        assert_eq!(line[0], b'D');
        assert_eq!(&line[1..20], b"6222020200001234567");
        assert!(line[20..33].iter().all(|b| *b == b' '));
        assert_eq!(&line[33..37], &*zhang_san);
        assert!(line[37..93].iter().all(|b| *b == b' '));
        assert_eq!(&line[93..108], b"000000000080000");
        assert_eq!(&line[108..144], ORDER_A.as_bytes());
        let control = lines[2];
        assert_eq!(&control[..26], b"T0000000002000000000145000");
        assert!(control[26..144].iter().all(|b| *b == b' '));
    }

    #[test]
    fn a_name_that_does_not_fit_or_gbk_lacks_is_not_written() {
        let mut lines = batch();
        lines[0].account_name = "名".repeat(31);
        assert_eq!(
            write_batch(Format::FixedGbk, &lines).unwrap_err().what,
            "the account name"
        );
        lines[0].account_name = "😀".into();
        assert!(write_batch(Format::FixedGbk, &lines).is_err());
        lines[0].account_name = "a,b".into();
        assert!(write_batch(Format::CsvUtf8, &lines).is_err());
    }

    #[test]
    fn result_files_round_trip_in_both_formats() {
        for format in [Format::CsvUtf8, Format::FixedGbk] {
            let file = write_result(format, &results(), 2, 145_000).unwrap();
            let read = parse_result(format, &file).unwrap();
            assert_eq!(
                read.lines,
                vec![(0, results()[0].clone()), (1, results()[1].clone())],
                "{format:?}"
            );
            assert_eq!((read.control_line, read.control_count), (2, 2));
            assert_eq!(read.control_total_fen, 145_000);
        }
    }

    #[test]
    fn a_batch_written_in_parts_is_the_whole_file_and_its_digest() {
        let lines: Vec<BatchLine> = (0..50)
            .map(|at| BatchLine {
                account: format!("62220202{at:011}"),
                account_name: "张三".into(),
                amount_fen: 10_000 + at,
                order_id: format!("0190f3c4-0000-5000-8000-{at:012}"),
            })
            .collect();
        for format in [Format::CsvUtf8, Format::FixedGbk] {
            let whole = write_batch(format, &lines).unwrap();
            for part_bytes in [1, 7, 146, 1000, 1 << 20] {
                let mut parts = FileParts::new(part_bytes);
                let mut writer = BatchWriter::new(format);
                let mut sent = Vec::new();
                for line in &lines {
                    writer.line(line, parts.buffer()).unwrap();
                    for (part, digest) in parts.full_parts() {
                        assert_eq!(part.len(), part_bytes);
                        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&part)));
                        sent.extend(part);
                    }
                }
                assert_eq!(writer.finish(parts.buffer()).unwrap(), (50, 500_000 + 1225));
                let mut rest = parts.full_parts();
                let (last, sha256, length) = parts.finish();
                rest.extend(last);
                for (part, _) in rest {
                    sent.extend(part);
                }
                assert_eq!(sent, whole, "{format:?} in parts of {part_bytes}");
                assert_eq!(sha256, sha256_hex(&whole));
                assert_eq!(length, whole.len() as u64);
            }
        }
    }

    #[test]
    fn an_account_opens_from_intake_s_encoding_and_never_prints() {
        use prost::Message as _;
        let encoded = pb::PaymentAccount {
            bank: "示例农商银行".into(),
            account_number: "6222020200112233".into(),
            holder_name: "王建国".into(),
        }
        .encode_to_vec();
        let account = Account::from_opened(&encoded).unwrap();
        assert_eq!(account.number, "6222020200112233");
        assert_eq!(account.holder_name, "王建国");
        assert_eq!(account.tail(), "2233");
        assert_eq!(format!("{account:?}"), "Account(..)");
        let line = BatchLine::of(&pb::PaymentOrder::default(), &account);
        assert!(!format!("{line:?}").contains("2233"));
        assert!(Account::from_opened(b"").is_none());
        assert!(Account::from_opened(&[0xFF, 0xFF]).is_none());
    }

    fn refused(format: Format, file: &[u8]) -> Vec<FieldViolation> {
        parse_result(format, file).unwrap_err()
    }

    #[test]
    fn every_malformed_kind_is_refused_naming_its_line() {
        let good = |format| write_result(format, &results(), 2, 145_000).unwrap();
        for format in [Format::CsvUtf8, Format::FixedGbk] {
            // Truncated: no control line; a last line cut short too.
            let file = good(format);
            let control_bytes = match format {
                Format::CsvUtf8 => "T,2,145000\r\n".len(),
                Format::FixedGbk => RESULT_LINE_BYTES + 2,
            };
            let without_control = &file[..file.len() - control_bytes];
            assert_eq!(fields(&refused(format, without_control)), ["lines[2]"]);
            let cut = &file[..file.len() - control_bytes - 10];
            assert_eq!(
                fields(&refused(format, cut)),
                ["lines[1]", "lines[2]"],
                "{format:?}"
            );
            // A duplicate line.
            let mut doubled = results();
            doubled.push(results()[0].clone());
            let file = write_result(format, &doubled, 3, 225_000).unwrap();
            assert_eq!(fields(&refused(format, &file)), ["lines[2]"], "{format:?}");
            // Wrong control figures.
            let file = write_result(format, &results(), 3, 145_000).unwrap();
            assert_eq!(fields(&refused(format, &file)), ["lines[2]"]);
            let file = write_result(format, &results(), 2, 145_001).unwrap();
            assert_eq!(fields(&refused(format, &file)), ["lines[2]"]);
            // A bad flag, a failure without its reason.
            let mut bad = results();
            bad[1].reason = String::new();
            let file = write_result(format, &bad, 2, 145_000).unwrap();
            assert_eq!(fields(&refused(format, &file)), ["lines[1]"]);
            // Lines after the control line.
            let mut file = good(format);
            file.extend(good(format));
            assert_eq!(
                fields(&refused(format, &file)),
                ["lines[3]", "lines[4]", "lines[5]"]
            );
            // An empty file is only truncated.
            assert_eq!(fields(&refused(format, b"")), ["lines[0]"]);
        }
    }

    #[test]
    fn bytes_that_are_not_the_files_encoding_are_refused_on_their_line() {
        // Invalid UTF-8 in the second line's reason.
        let mut file = write_result(Format::CsvUtf8, &results(), 2, 145_000).unwrap();
        let at = file.windows(3).position(|w| w == "账".as_bytes()).unwrap();
        file[at] = 0xFF;
        assert_eq!(fields(&refused(Format::CsvUtf8, &file)), ["lines[1]"]);
        // GBK read as UTF-8 is not UTF-8 either.
        let gbk = write_result(Format::FixedGbk, &results(), 2, 145_000).unwrap();
        assert!(!refused(Format::CsvUtf8, &gbk).is_empty());
        // Invalid GBK: a lead byte followed by a space.
        let mut file = write_result(Format::FixedGbk, &results(), 2, 145_000).unwrap();
        let line_two = RESULT_LINE_BYTES + 2;
        let reason_at = line_two + 1 + ORDER_ID_WIDTH + ACCOUNT_WIDTH + AMOUNT_WIDTH + 1;
        file[reason_at] = 0x81;
        file[reason_at + 1] = b' ';
        let violations = refused(Format::FixedGbk, &file);
        assert_eq!(fields(&violations), ["lines[1]"]);
        assert!(violations[0].description.contains("GBK"), "{violations:?}");
    }
}
