/**
 * Reads the README's walk-through as a script: which commands it runs, in order, and what each is
 * shown to print. The conventions (also written in an HTML comment at the top of the section):
 *
 * - The section runs from its `## Walk-through` heading to the next `## ` heading.
 * - A ```sh block is one step, run whole; it is shown to print nothing.
 * - In a ```console block, a line starting with `$ ` is a command (continued on the next line while
 *   a line ends with `\`); the lines up to the next command are what it prints.
 * - A block right after the line `<!-- walkthrough: not run -->` is left out (browser steps).
 *   Blocks in any other language (```yaml, ```http, ```) are prose, not run.
 *
 * And in a shown output (see outputMatches):
 * - `…` stands for any text within a line; letters, digits, `-` and `_` right before it belong to
 *   what it stands for (`"44c28bb6-…"` is a shortened id); a line holding only `…` stands for any
 *   number of lines (the headers a reader need not see).
 * - Values that differ in every run are compared by shape: ids, tokens, secrets, codes, times.
 *   Trailing spaces and CRs are ignored.
 */

export const WALKTHROUGH_HEADING = '## Walk-through';
export const NOT_RUN_MARKER = '<!-- walkthrough: not run -->';

export interface Step {
  /** 1-based line of the command in the README, for failure messages. */
  readonly line: number;
  /** What bash runs: continuation lines kept as they are (the `\` joins them). */
  readonly command: string;
  /** What the README shows it printing, lines joined with `\n`, trailing blank lines dropped. */
  readonly expected: string;
}

/** The walk-through's steps, in the order a reader pastes them. Throws if the section is missing. */
export function extractSteps(markdown: string): Step[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.startsWith(WALKTHROUGH_HEADING));
  if (start === -1) throw new Error(`README.md has no "${WALKTHROUGH_HEADING}" section`);
  const next = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  const end = next === -1 ? lines.length : next;

  const steps: Step[] = [];
  let previousText = '';
  for (let i = start + 1; i < end; i++) {
    const fence = /^```(\S*)\s*$/.exec(lines[i]!);
    if (fence === null) {
      if (lines[i]!.trim() !== '') previousText = lines[i]!.trim();
      continue;
    }
    const language = fence[1]!;
    const close = lines.findIndex((line, j) => j > i && line.trimEnd() === '```');
    if (close === -1 || close >= end) throw new Error(`README.md:${i + 1}: a code block that does not close inside the walk-through`);
    const body = lines.slice(i + 1, close);
    const skipped = previousText === NOT_RUN_MARKER;
    if (!skipped && language === 'sh') steps.push({ line: i + 2, command: body.join('\n'), expected: '' });
    if (!skipped && language === 'console') steps.push(...consoleSteps(body, i + 2));
    previousText = '';
    i = close;
  }
  return steps;
}

function consoleSteps(body: readonly string[], firstLine: number): Step[] {
  const steps: Step[] = [];
  let i = 0;
  if (body.length > 0 && !body[0]!.startsWith('$ ')) throw new Error(`README.md:${firstLine}: a console block must start with a "$ " command`);
  while (i < body.length) {
    const line = firstLine + i;
    const command = [body[i]!.slice(2)];
    while (command.at(-1)!.endsWith('\\') && i + 1 < body.length) command.push(body[++i]!);
    i++;
    const output: string[] = [];
    while (i < body.length && !body[i]!.startsWith('$ ')) output.push(body[i++]!);
    while (output.length > 0 && output.at(-1)!.trim() === '') output.pop();
    steps.push({ line, command: command.join('\n'), expected: output.join('\n') });
  }
  return steps;
}

/**
 * Values that differ in every run, replaced by their kind in both the shown and the real output,
 * so that a README captured from one run matches another. In this order: an id's digits must not be
 * read as a time or a code first.
 */
const SHAPES: ReadonlyArray<readonly [RegExp, string]> = [
  [/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>'],
  // 32 random bytes in base64url: session tokens.
  [/(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g, '<token>'],
  [/(?<![A-Z2-7])[A-Z2-7]{32}(?![A-Z2-7])/g, '<base32-secret>'],
  [/(?<![A-Z2-7])(?:[A-Z2-7]{4} ){7}[A-Z2-7]{4}(?![A-Z2-7 ])/g, '<manual-key>'],
  [/\b[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}\b/g, '<recovery-code>'],
  [/\b\d{10}\b/g, '<unix-time>'],
  [/\b\d{6}\b/g, '<code>'],
];

export function normalise(text: string): string {
  // Trailing spaces are invisible in the README, and CRs are curl's header line ends.
  let result = text.replace(/\r/g, '').replace(/[ \t]+$/gm, '');
  for (const [shape, name] of SHAPES) result = result.replace(shape, name);
  return result;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Whether `actual` is what `expected` shows, by the rules at the top of this file. */
export function outputMatches(expected: string, actual: string): boolean {
  const shown = normalise(expected);
  const real = normalise(actual).replace(/\n+$/, '');
  if (shown === '') return real === '';
  const pattern = shown
    .split('\n')
    .map((line) => (line === '…' ? '(?:[^\\n]*\\n)*?' : `${line.split(/[A-Za-z0-9_-]*…/).map(escapeRegExp).join('[^\\n]*?')}\\n`))
    .join('');
  return new RegExp(`^${pattern}$`).test(`${real}\n`);
}
