/** Milliseconds since the Unix epoch. Every time-dependent function takes one; tests pass a fake. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
