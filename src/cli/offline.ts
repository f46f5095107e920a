import type { GatewayPolicy } from '../config/types.js';
import { loadKeyring, rotateKeyFile } from '../crypto/keyring.js';
import { rewrapFactors } from '../crypto/rewrap.js';
import { createLogger } from '../log/logger.js';
import { enrollFactorOffline, listFactorsOffline, removeFactorOffline, revokeSessionsOffline } from '../mfa/factors.js';
import { openStore } from '../store/open.js';
import { systemClock } from '../time/clock.js';
import { formatDuration } from '../time/duration.js';
import { factorJson } from '../doors/mfa-api/endpoints.js';
import { runInviteCommand } from './invite.js';
import { UsageError, type CliValues } from './options.js';

type Print = (text: string) => void;

/** `keys status|rotate|rewrap`: key management without a running gateway (rewrap is online-safe). */
export async function runKeysCommand(policy: GatewayPolicy, args: readonly string[], print: Print): Promise<number> {
  const [action, ...extra] = args;
  if (extra.length > 0) throw new UsageError('usage: keys init [--file PATH] | status | rotate | rewrap');
  const now = systemClock();
  switch (action) {
    case 'status': {
      const keyring = loadKeyring({ ...policy.keys });
      for (const age of keyring.keyAges(now)) {
        const stale = age.primary && age.ageMs > policy.keys.rotationMs ? `  (older than ${formatDuration(policy.keys.rotationMs)}: rotate)` : '';
        print(`${age.primary ? '*' : ' '} ${age.kid.padEnd(20)} created ${new Date(age.createdAt).toISOString().slice(0, 10)}  age ${Math.floor(age.ageMs / 86_400_000)}d${stale}`);
      }
      return 0;
    }
    case 'rotate': {
      if (policy.keys.file === undefined) throw new Error('keys rotate needs keys.file in the policy (keys from the environment are rotated where they are set)');
      const { kid, previousKid } = rotateKeyFile(policy.keys.file);
      print(`new primary key ${kid} (previous primary ${previousKid} kept to open older secrets); run "keys rewrap" to re-encrypt them`);
      return 0;
    }
    case 'rewrap': {
      const keyring = loadKeyring({ ...policy.keys });
      const store = await openStore(policy.store, systemClock);
      try {
        const result = await rewrapFactors(store.durable, keyring);
        print(`rewrapped ${result.rewrapped} sealed secrets (factor secrets and contact destinations) under ${keyring.primaryKid}; ${result.failed} could not be opened`);
        return result.failed === 0 ? 0 : 1;
      } finally {
        await store.close();
      }
    }
    default:
      throw new UsageError('usage: keys init [--file PATH] | status | rotate | rewrap');
  }
}

async function withStores<T>(policy: GatewayPolicy, work: (stores: Awaited<ReturnType<typeof openStore>>) => Promise<T>): Promise<T> {
  const store = await openStore(policy.store, systemClock);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

const FACTORS_USAGE = 'usage: factors enroll|list|remove|revoke-sessions|invite --user SUBJECT';
const FACTOR_ACTIONS: ReadonlySet<string> = new Set(['enroll', 'list', 'remove', 'revoke-sessions', 'invite']);

/** `factors enroll|list|remove|revoke-sessions|invite --user SUB`: the operator's offline counterpart of the enrollment API. */
export async function runFactorsCommand(policy: GatewayPolicy, args: readonly string[], values: CliValues, print: Print): Promise<number> {
  const [action, ...extra] = args;
  if (extra.length > 0 || !FACTOR_ACTIONS.has(action ?? '')) throw new UsageError(FACTORS_USAGE);
  const subject = values.user;
  if (subject === undefined || subject === '') throw new UsageError('factors needs --user SUBJECT');
  if (action === 'invite') return runInviteCommand(policy, subject, print);
  const audit = createLogger({ name: 'audit' });
  switch (action) {
    case 'enroll': {
      const keyring = loadKeyring({ ...policy.keys });
      const type = values.type === 'hotp' ? 'hotp' : values.type === 'totp' || values.type === undefined ? 'totp' : undefined;
      if (type === undefined) throw new UsageError('--type must be totp or hotp');
      const counter = values.counter === undefined ? undefined : Number(values.counter);
      if (counter !== undefined && !(Number.isSafeInteger(counter) && counter >= 0)) throw new UsageError('--counter must be a whole number ≥ 0');
      const enrolled = await withStores(policy, ({ durable, bus }) =>
        enrollFactorOffline({ policy, durable, bus, keyring, audit }, { subject, type, secret: values.secret, counter, label: values.label }),
      );
      print(`factor ${enrolled.factorId} (${enrolled.type}, ${enrolled.status}) for ${subject}`);
      if (values.secret === undefined) {
        print(enrolled.terminalQr);
        print(`otpauth URI: ${enrolled.otpauthUri}`);
        print(`manual key:  ${enrolled.manualKey}`);
      }
      if (enrolled.recoveryCodes !== undefined) {
        print('recovery codes (shown once; each works once):');
        for (const code of enrolled.recoveryCodes) print(`  ${code}`);
      }
      return 0;
    }
    case 'list': {
      const { factors, recoveryCodesHint } = await withStores(policy, ({ durable }) => listFactorsOffline({ durable, policy }, subject));
      if (factors.length === 0) print(`${subject} has no factors`);
      // The very fields GET /.mfa/factors answers (snake_case), one JSON object a line.
      for (const factor of factors) print(JSON.stringify(factorJson(factor)));
      if (recoveryCodesHint !== undefined) print(recoveryCodesHint);
      return 0;
    }
    case 'remove': {
      if (values.id === undefined || values.id === '') throw new UsageError('factors remove needs --id FACTOR_ID');
      const factorId = values.id;
      const removed = await withStores(policy, ({ durable, ttl, bus }) => removeFactorOffline({ durable, ttl, bus, audit }, subject, factorId));
      // Nothing removed is a failed operation: stderr and exit 1, never a quiet success.
      if (!removed) throw new Error(`${subject} has no factor ${factorId}; nothing was removed`);
      print(`removed factor ${factorId} of ${subject}`);
      return 0;
    }
    case 'revoke-sessions': {
      const count = await withStores(policy, ({ ttl, bus }) => revokeSessionsOffline({ ttl, bus, audit }, subject));
      print(`ended ${count} session${count === 1 ? '' : 's'} of ${subject}`);
      return 0;
    }
    default:
      throw new UsageError(FACTORS_USAGE);
  }
}
