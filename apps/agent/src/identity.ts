import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { agentIdentityRoute, AgentIdentityReplySchema, ErrorCode, FlexmigError } from '@flexmig/contracts';
import { agentCreds, newUserKey } from '@flexmig/nats-auth';
import { sleep } from '@flexmig/timing';
import { writePrivateFileAtomic } from './private-files';

/** How long the agent keeps asking an issuer that does not answer yet (it may be starting with the agent). */
const unavailableForMs = 60_000;

/**
 * The agent's NATS identity from the identity issuer (Kubernetes, docs/kubernetes.md): a user key made
 * here, its JWT signed by the issuer for the host of this pod's node, written as a creds file (0600, in a
 * 0700 directory of /tmp) whose path becomes NATS_CREDS. Refusals (4xx) end the start at once with the
 * issuer's reason; an issuer that cannot be reached or answers 503 is asked again for a minute.
 */
export async function obtainAgentIdentity(o: { issuerUrl: string; tokenFile: string; hostId: string }): Promise<string> {
  let token: string;
  try {
    token = readFileSync(o.tokenFile, 'utf8').trim();
  } catch (e) {
    throw new FlexmigError(ErrorCode.ValidationFailed, `cannot read IDENTITY_TOKEN_FILE ${o.tokenFile} (${(e as Error).message}): the pod needs the projected ServiceAccount token for the issuer's audience`);
  }
  const user = newUserKey();
  const url = new URL(agentIdentityRoute, o.issuerUrl).toString();
  const deadline = Date.now() + unavailableForMs;
  for (let attempt = 1; ; attempt++) {
    let status = 0;
    let text = '';
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ hostId: o.hostId, publicKey: user.getPublicKey() }),
        signal: AbortSignal.timeout(10_000),
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      text = (e as Error).message;
    }
    if (status === 200) {
      const reply = AgentIdentityReplySchema.parse(JSON.parse(text));
      const claims = JSON.parse(Buffer.from(reply.jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string; name?: string };
      if (reply.hostId !== o.hostId || claims.name !== o.hostId || claims.sub !== user.getPublicKey()) {
        throw new FlexmigError(ErrorCode.ValidationFailed, `the identity issuer at ${o.issuerUrl} answered with the identity of ${claims.name ?? reply.hostId} for key ${claims.sub}, not of host ${o.hostId} for this agent's key`);
      }
      // mkdtemp makes the directory 0700: only this user reads the seed
      const dir = mkdtempSync(path.join(tmpdir(), 'flexmig-agent-identity-'));
      const file = path.join(dir, `agent-${o.hostId}.creds`);
      writePrivateFileAtomic(file, agentCreds(reply.jwt, user));
      console.log(`agent: host ${o.hostId}'s NATS identity issued by ${o.issuerUrl} (user key ${user.getPublicKey()})`);
      return file;
    }
    const reason = (() => {
      try {
        return (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        return text;
      }
    })();
    const retry = status === 0 || status === 503 || status === 502 || status === 504;
    if (!retry || Date.now() > deadline) {
      throw new FlexmigError(
        status === 403 || status === 401 ? ErrorCode.Forbidden : ErrorCode.Unavailable,
        `the identity issuer at ${o.issuerUrl} did not issue host ${o.hostId}'s identity (${status || 'unreachable'}: ${reason})`,
      );
    }
    console.warn(`agent: the identity issuer at ${o.issuerUrl} is not answering (${status || 'unreachable'}: ${reason}); asking again (attempt ${attempt})`);
    await sleep(Math.min(5_000, 500 * attempt));
  }
}
