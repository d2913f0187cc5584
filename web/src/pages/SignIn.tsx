// Sign in with email and password, then a TOTP (or recovery) code when the account asks for one.
import { useState } from "react";
import type { FormEvent } from "react";

import { ErrorBox, Field } from "../components/ui";
import { asError } from "../hooks";
import { useSession } from "../session";

export function SignIn() {
  const session = useSession();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [challenge, setChallenge] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (challenge) {
        await session.verifyMfa(challenge, code.trim());
      } else {
        const result = await session.signIn(email.trim(), password);
        if (result.mfa) setChallenge(result.challenge);
      }
    } catch (reason) {
      setError(asError(reason));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="center">
      <form className="card signin" onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">CFP Workbench</h1>
        <p className="muted">
          {challenge ? "Enter the code from your authenticator app." : "Sign in to your account."}
        </p>
        <ErrorBox error={error} />
        {challenge ? (
          <Field label="Code">
            <input
              name="code"
              inputMode="numeric"
              autoComplete="one-time-code"
              value={code}
              onChange={(e) => setCode(e.target.value)}
              required
              autoFocus
            />
          </Field>
        ) : (
          <>
            <Field label="Email">
              <input
                name="email"
                type="email"
                autoComplete="username"
                value={email}
                onChange={(e) => setEmail(e.target.value)}
                required
                autoFocus
              />
            </Field>
            <Field label="Password">
              <input
                name="password"
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
              />
            </Field>
          </>
        )}
        <button type="submit" className="btn primary" disabled={busy}>
          {busy ? "Signing in…" : challenge ? "Verify" : "Sign in"}
        </button>
        <p className="muted small">
          <code>cfp dev</code> prints the local administrator's email and password on its first
          run, and keeps them in <code>.cfp/dev-credentials</code>.
        </p>
      </form>
    </main>
  );
}
