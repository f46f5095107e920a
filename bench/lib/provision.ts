import { loadPolicyFile } from '../../src/config/load.js';
import { loadKeyring } from '../../src/crypto/keyring.js';
import { buildFactor, issueRecoveryCodes } from '../../src/mfa/enrollment.js';
import { openStore } from '../../src/store/open.js';
import { signToken, type EnrolledUser, type Signers } from './gateway-setup.js';
import { base32Decode } from './totp.js';

/**
 * Bulk enrolment before the gateway starts, the way an operator provisions users with
 * `mfa-gateway factors enroll`: the gateway's own factor builder (secret sealed to the row with
 * the policy's key file) and store, an active TOTP factor and recovery codes per user. The HTTP
 * enrolment path renders a 300×300 QR PNG and SVG per user, which makes tens of thousands of
 * enrolments take minutes; the fresh-code rows need that many users (see bench/README.md).
 */
export async function provisionUsers(configPath: string, signers: Signers, prefix: string, count: number): Promise<EnrolledUser[]> {
  const policy = loadPolicyFile(configPath);
  const keyring = loadKeyring({ ...policy.keys });
  const store = await openStore(policy.store, Date.now);
  const users: EnrolledUser[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const subject = `${prefix}${i}`;
      const now = Date.now();
      const built = buildFactor({ subject, request: { type: 'totp' }, policy, keyring, now, active: true });
      await store.durable.createFactor(built.record);
      await issueRecoveryCodes(store.durable, keyring, subject, policy.mfa.recoveryCodes.count, now);
      users.push({
        subject,
        authorization: `Bearer ${await signToken(signers, 'ES256', subject)}`,
        factorId: built.record.id,
        secret: base32Decode(built.secretBase32),
        lastStep: -1,
      });
    }
  } finally {
    await store.close();
  }
  return users;
}
