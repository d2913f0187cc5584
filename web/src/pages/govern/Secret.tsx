// A secret shown exactly once (a new API key): a warning, the value in a read-only box, a copy
// button, and "Done", after which the caller forgets it. It is never stored, logged or shown
// again; the server keeps only its hash.
import { useRef, useState } from "react";

import "./govern.css";

export function OneTimeSecret(props: { secret: string; title: string; onDone: () => void }) {
  const box = useRef<HTMLInputElement | null>(null);
  const [copied, setCopied] = useState<"no" | "yes" | "failed">("no");

  const copy = async () => {
    try {
      if (!navigator.clipboard?.writeText) throw new Error("no clipboard");
      await navigator.clipboard.writeText(props.secret);
      setCopied("yes");
    } catch {
      // No clipboard API (plain http, an old browser): select it for a manual copy.
      box.current?.focus();
      box.current?.select();
      let done = false;
      try {
        done = typeof document.execCommand === "function" && document.execCommand("copy");
      } catch {
        done = false;
      }
      setCopied(done ? "yes" : "failed");
    }
  };

  return (
    <section className="gv-secret" aria-label={props.title}>
      <strong>{props.title}: copy it now</strong>
      <p className="small" style={{ margin: 0 }}>
        This is the only time the key is shown. The platform keeps only a hash of it and cannot
        show it again; if it is lost, create or rotate a key. Anyone holding it acts as this
        service account, so keep it in a secret manager, never in code or chat.
      </p>
      <label className="field">
        <span>Secret</span>
        <input
          ref={box}
          readOnly
          value={props.secret}
          spellCheck={false}
          autoComplete="off"
          onFocus={(e) => e.currentTarget.select()}
        />
      </label>
      <div className="gv-actions">
        <button type="button" className="btn primary" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" className="btn plain" onClick={props.onDone}>
          Done: I have stored it
        </button>
      </div>
      <p className="small" role="status" style={{ margin: 0 }}>
        {copied === "yes"
          ? "Copied to the clipboard."
          : copied === "failed"
            ? "Copying is not available here: the key is selected, copy it by hand."
            : ""}
      </p>
    </section>
  );
}
