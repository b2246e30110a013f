// Sign-in with an admin token: the engine answers with an httpOnly session cookie; the token is not kept.
import { useState, type FormEvent, type ReactNode } from 'react';
import { api, type Problem } from '../api.ts';
import { ProblemBox, toProblem, type Me } from '../ui.tsx';

export function SignIn({ reason, onSignedIn }: { reason: Problem | null; onSignedIn: (me: Me) => void }): ReactNode {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<Problem | null>(reason);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const { data, error } = await api.POST('/admin/v1/session', { body: { token } });
      if (error || !data) throw error;
      onSignedIn({ name: data.name, role: data.role });
    } catch (err) {
      setProblem(toProblem(err));
    }
  };
  return (
    <form className="signin" onSubmit={(e) => void submit(e)}>
      <h1>seigo console</h1>
      <p>Sign in with an admin token from the engine's configuration (<code>adminTokens</code>).</p>
      <ProblemBox problem={problem} />
      <label>Admin token <input name="token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} /></label>
      <button type="submit" disabled={token === ''}>Sign in</button>
    </form>
  );
}
