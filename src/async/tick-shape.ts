import { createHook } from 'node:async_hooks';

/**
 * Keeps `process.nextTick` on V8's fast path for the life of the process.
 *
 * Node builds every tick as the literal `{ [async_id_symbol]: …, [trigger_async_id_symbol]: …,
 * callback, args }`. Each of its keyed stores remembers the one hidden class (map) it has seen, and
 * V8 switches a store to a runtime call for good the first time it sees another
 * (`Runtime_DefineKeyedOwnPropertyInLiteral`, V8 11 to 13). The feedback holds those maps weakly: a
 * full collection while no tick is pending — what V8's memory reducer does to a process that went
 * idle — frees them, the next tick builds new ones, and every tick from then on pays four runtime
 * calls. Behind a proxied request that was 36 calls, 45,000 instructions: a fifth of the gateway's
 * work per request, for the rest of the process's life (bench/results/issue-11-progress.md).
 *
 * Holding one real tick keeps its map, and through the map's back pointers every map those stores
 * remember, alive. The tick is taken from a TickObject init hook that is enabled for one
 * `nextTick` and disabled again, which restores Node's callback path as it was.
 */

let held: object | undefined;

function noop(): void {}

/** Idempotent; call it early, before the process can go idle. Returns the held tick (for tests). */
export function holdTickShape(): object | undefined {
  if (held !== undefined) return held;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && held === undefined) held = resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
  return held;
}
