//! The bank's side of payment's files in the scenarios: a result file (回盘) answering a CSV
//! batch file, as a bank would write it from the batch it received (`docs/bank-files.md`).

use sunshine_payment::bank_files::{Format, ResultLine, write_result};

/// The batch file's order lines (`D,account,name,amount,order id`), as result lines paid.
pub fn batch_lines(csv_batch: &[u8]) -> anyhow::Result<Vec<ResultLine>> {
    let text = std::str::from_utf8(csv_batch)?;
    let mut lines = Vec::new();
    for line in text.split_terminator("\r\n") {
        let fields: Vec<&str> = line.split(',').collect();
        match fields[..] {
            ["D", account, _name, amount, order_id] => lines.push(ResultLine {
                order_id: order_id.to_owned(),
                account: account.to_owned(),
                amount_fen: amount.parse()?,
                paid: true,
                reason: String::new(),
            }),
            ["T", _, _] => {}
            _ => anyhow::bail!("not a line of the CSV batch layout: {line:?}"),
        }
    }
    Ok(lines)
}

/// The result file of `lines` in `format` with its true control line.
pub fn result_file(format: Format, lines: &[ResultLine]) -> anyhow::Result<Vec<u8>> {
    let total = lines.iter().map(|line| line.amount_fen).sum();
    write_result(format, lines, u64::try_from(lines.len())?, total)
        .ok_or_else(|| anyhow::anyhow!("a result line does not fit the layout"))
}

/// The bank's answer to `csv_batch`: every order paid but the one `failed` (the bank's
/// reason given), in `format`.
pub fn answer(csv_batch: &[u8], format: Format, failed: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut lines = batch_lines(csv_batch)?;
    for line in &mut lines {
        if Some(line.order_id.as_str()) == failed {
            line.paid = false;
            line.reason = "账户已销户".into();
        }
    }
    result_file(format, &lines)
}

/// The bank's returns file (退票) of `lines` (each with its reason) in `format`, with its true
/// control line: the result's layout, every line flagged `B`.
pub fn returns_file(format: Format, lines: &[ResultLine]) -> anyhow::Result<Vec<u8>> {
    let total = lines.iter().map(|line| line.amount_fen).sum();
    sunshine_payment::bank_files::write_returns(format, lines, u64::try_from(lines.len())?, total)
        .ok_or_else(|| anyhow::anyhow!("a returns line does not fit the layout"))
}

/// A bank file as `ExportBankFile` streams it, put back together: the parts in order, and
/// the first message's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub file: Vec<u8>,
    pub sha256: String,
    pub count: u32,
    pub total: Option<sunshine_proto::v1::Money>,
    pub file_bytes: u64,
    /// The messages' parts' sizes, in order.
    pub parts: Vec<usize>,
}

/// Reads an `ExportBankFile` stream to its end.
pub async fn collect(
    stream: tonic::Response<tonic::Streaming<sunshine_proto::v1::ExportBankFileResponse>>,
) -> Result<ExportedFile, tonic::Status> {
    let mut stream = stream.into_inner();
    let mut exported = ExportedFile {
        file: Vec::new(),
        sha256: String::new(),
        count: 0,
        total: None,
        file_bytes: 0,
        parts: Vec::new(),
    };
    while let Some(message) = stream.message().await? {
        if exported.parts.is_empty() {
            exported.sha256 = message.sha256;
            exported.count = message.count;
            exported.total = message.total;
            exported.file_bytes = message.file_bytes;
        }
        exported.parts.push(message.file.len());
        exported.file.extend(message.file);
    }
    Ok(exported)
}
