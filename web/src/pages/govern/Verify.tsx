// The audit chain's verification: a Verify button (`POST /v1/audit/verify`) and its verdict —
// intact or the first bad seq and why, how many records were checked, the latest checkpoint.
import { useState } from "react";

import { api } from "../../api";
import { Action, ErrorBox, Field, time } from "../../components/ui";
import { asError } from "../../hooks";

import "./govern.css";

export type Checkpoint = {
  chain: string;
  size: number;
  root: string;
  note: string;
  origin: string;
  key: Record<string, unknown>;
  head: Record<string, unknown>;
  created_at: string;
  anchors: Record<string, string>;
  timestamp_error?: string | null;
};

export type Verdict = {
  ok: boolean;
  checked: number;
  first_bad_seq: number | null;
  reason: string | null;
  latest_checkpoint: Checkpoint | null;
};

function keyName(key: Record<string, unknown>): string {
  const name = key.name ?? key.key_id;
  const extra = [key.version !== undefined ? `version ${String(key.version)}` : null, typeof key.algorithm === "string" ? key.algorithm : null]
    .filter(Boolean)
    .join(", ");
  return `${typeof name === "string" ? name : "—"}${extra ? ` (${extra})` : ""}`;
}

/** A checkpoint's anchoring in words: the signed note at the anchor sink, and a timestamp. */
export function anchoring(anchors: Record<string, string> | null | undefined): string {
  const kinds = Object.keys(anchors ?? {});
  if (!kinds.length) return "not anchored";
  return kinds.includes("tsr") ? "anchored, timestamped" : "anchored";
}

export function CheckpointFacts({ checkpoint }: { checkpoint: Checkpoint }) {
  const anchors = Object.entries(checkpoint.anchors ?? {});
  return (
    <dl className="gv-kv">
      <dt>Tree size</dt>
      <dd>{checkpoint.size}</dd>
      <dt>Signed</dt>
      <dd>{time(checkpoint.created_at)}</dd>
      <dt>Origin</dt>
      <dd className="gv-mono">{checkpoint.origin}</dd>
      <dt>Root</dt>
      <dd className="gv-mono" title={checkpoint.root}>
        {checkpoint.root}
      </dd>
      <dt>Key</dt>
      <dd className="gv-mono">{keyName(checkpoint.key ?? {})}</dd>
      <dt>Anchors</dt>
      <dd>
        {anchors.length
          ? anchors.map(([kind, where]) => (
              <div key={kind} className="gv-mono small">
                {kind}: {where}
              </div>
            ))
          : "none"}
      </dd>
      {checkpoint.timestamp_error ? (
        <>
          <dt>Timestamp</dt>
          <dd>failed: {checkpoint.timestamp_error}</dd>
        </>
      ) : null}
    </dl>
  );
}

/** What a verification found, in words (colour is only a second cue). */
export function VerdictView({ verdict, at }: { verdict: Verdict; at?: Date }) {
  return (
    <div className={`gv-verdict ${verdict.ok ? "ok" : "bad"}`} role="status" aria-live="polite">
      <h3>{verdict.ok ? "✓ The chain is intact" : "✗ The chain is broken"}</h3>
      <dl className="gv-kv">
        <dt>Result</dt>
        <dd>{verdict.ok ? "ok" : "failed"}</dd>
        <dt>Checked</dt>
        <dd>
          {verdict.checked} record{verdict.checked === 1 ? "" : "s"}
        </dd>
        {!verdict.ok || verdict.first_bad_seq !== null ? (
          <>
            <dt>First bad seq</dt>
            <dd>{verdict.first_bad_seq ?? "—"}</dd>
          </>
        ) : null}
        {verdict.reason ? (
          <>
            <dt>Reason</dt>
            <dd>{verdict.reason}</dd>
          </>
        ) : null}
        {at ? (
          <>
            <dt>Verified at</dt>
            <dd>{at.toLocaleString()}</dd>
          </>
        ) : null}
      </dl>
      <strong>Latest checkpoint</strong>
      {verdict.latest_checkpoint ? (
        <CheckpointFacts checkpoint={verdict.latest_checkpoint} />
      ) : (
        <p className="muted small" style={{ margin: 0 }}>
          None signed yet: the records are protected by the hash chain until the next checkpoint.
        </p>
      )}
    </div>
  );
}

function whole(text: string): number | null {
  const value = text.trim();
  return /^[0-9]{1,15}$/.test(value) ? Number(value) : null;
}

/** The Verify button with an optional seq range, and the verdict of the last run. */
export function VerifyPanel(props: { tenant: string | null; allowed: boolean; why?: string }) {
  const [verdict, setVerdict] = useState<{ result: Verdict; at: Date } | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");

  const verify = async () => {
    setBusy(true);
    setError(null);
    try {
      const body: { from_seq?: number; to_seq?: number } = {};
      const first = whole(from);
      const last = whole(to);
      if (first !== null) body.from_seq = first;
      if (last !== null) body.to_seq = last;
      const result = await api<Verdict>("/v1/audit/verify", { body, tenant: props.tenant });
      setVerdict({ result, at: new Date() });
    } catch (reason) {
      setVerdict(null);
      setError(asError(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="gv-section">
      <div className="gv-bar">
        <Field label="From seq (optional)">
          <input inputMode="numeric" pattern="[0-9]*" value={from} onChange={(e) => setFrom(e.target.value)} />
        </Field>
        <Field label="To seq (optional)">
          <input inputMode="numeric" pattern="[0-9]*" value={to} onChange={(e) => setTo(e.target.value)} />
        </Field>
        <Action kind="primary" allowed={props.allowed} why={props.why} busy={busy} onClick={() => void verify()}>
          Verify
        </Action>
      </div>
      <ErrorBox error={error} />
      {verdict ? <VerdictView verdict={verdict.result} at={verdict.at} /> : null}
    </div>
  );
}
