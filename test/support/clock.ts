/** 2026-01-01T00:00:00Z, on a 30 s TOTP step boundary: the default start of a fake clock. */
export const T0 = Date.UTC(2026, 0, 1);

/** The TOTP period every test factor uses. */
export const STEP_MS = 30_000;

/**
 * A settable clock for code that takes a `Clock` (`() => number`, epoch ms): the fake clock is
 * itself that function, so pass it as is (`clock: clock`), read it with `clock()`.
 */
export interface FakeClock {
  (): number;
  set(ms: number): void;
  advance(ms: number): void;
  /** One TOTP step (30 s) on: the next code is a new one. */
  advanceStep(): void;
}

export function fakeClock(start = T0): FakeClock {
  let now = start;
  const clock = (() => now) as FakeClock;
  clock.set = (ms) => {
    now = ms;
  };
  clock.advance = (ms) => {
    now += ms;
  };
  clock.advanceStep = () => {
    now += STEP_MS;
  };
  return clock;
}

/**
 * One second into the TOTP step the wall clock is in now. For a fake clock that must stay near real
 * time (a gateway started on it also reads key-file dates), with a whole step ahead before the code changes.
 */
export function intoCurrentStep(): number {
  return Math.floor(Date.now() / STEP_MS) * STEP_MS + 1_000;
}
