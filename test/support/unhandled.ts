import assert from 'node:assert/strict';
import { after } from 'node:test';

/**
 * Fails the test file if any promise is left to reject unhandled while it runs (e.g. by a timer
 * or a socket of the code under test, after the test that started it passed). Call at top level.
 */
export function failOnUnhandledRejections(): void {
  const unhandled: unknown[] = [];
  const record = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', record);
  after(() => {
    process.off('unhandledRejection', record);
    assert.deepEqual(unhandled, [], 'no promise was left to reject unhandled');
  });
}
