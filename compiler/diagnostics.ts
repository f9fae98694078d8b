import { lineText, type Span } from "./source.js";

/**
 * The only place that formats a position. A diagnostic reads
 *
 *     file:line:col: error: message
 *     <the source line>
 *     <a caret under the column, indented with the line's own tabs>
 */

export interface Diagnostic {
  readonly span: Span | undefined;
  readonly message: string;
}

/** Raised by a stage that cannot go on (a syntax error, an include cycle); carries every diagnostic so far. */
export class CompileError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join("\n"));
    this.name = "CompileError";
  }
}

/** Collects diagnostics; stages report into it and go on where they can. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];
  /** The checker stops collecting past this many, so a garbage file cannot flood the terminal. */
  static readonly limit = 100;
  /**
   * Where a position falls in the text as read, `#include`d files spliced in; set by the
   * preprocessor so that errors across files sort in reading order. Undefined for a file it
   * did not read: those keep the order they were reported in.
   */
  readingOrder: (span: Span) => number | undefined = () => undefined;

  error(span: Span | undefined, message: string): void {
    if (this.items.length < DiagnosticBag.limit) this.items.push({ span, message });
  }

  get hasErrors(): boolean {
    return this.items.length > 0;
  }

  /** No more errors are kept: a stage may skip the work of describing one (a "did you mean"). */
  get full(): boolean {
    return this.items.length >= DiagnosticBag.limit;
  }

  /** Throws a CompileError if anything was reported. */
  throwIfAny(): void {
    if (this.hasErrors) throw new CompileError(this.sorted());
  }

  /** Diagnostics without a position first, then in reading order. */
  sorted(): Diagnostic[] {
    const rank = (d: Diagnostic) => (d.span === undefined ? -1 : (this.readingOrder(d.span) ?? Infinity));
    return [...this.items].sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      if (ra !== rb) return ra < rb ? -1 : 1;
      // Same line as read, or both unplaced: columns decide within one file.
      return a.span !== undefined && b.span !== undefined && a.span.file === b.span.file ? a.span.line - b.span.line || a.span.col - b.span.col : 0;
    });
  }
}

/** Source lines longer than this are shown as a window around the column. */
export const maxShownLine = 120;
/** Messages longer than this (they quote names and numbers from the source) are cut. */
export const maxMessage = 400;

export function formatDiagnostic(d: Diagnostic): string {
  if (d.span === undefined) return `rpcgen: error: ${printable(shorten(d.message))}`;
  const { file, line, col } = d.span;
  // A message may quote the source (an #error line, a #if expression): keep it printable too.
  const head = `${file.path}:${line}:${col}: error: ${printable(shorten(d.message))}`;
  let text = lineText(file, line);
  let caretCol = col;
  if (text.length > maxShownLine) {
    let start = Math.max(0, col - 1 - maxShownLine / 2);
    let end = Math.min(text.length, start + maxShownLine);
    // Never split a UTF-16 surrogate pair: half a character would print as garbage.
    if (start > 0 && isLowSurrogate(text.charCodeAt(start))) start--;
    if (end < text.length && isLowSurrogate(text.charCodeAt(end))) end++;
    text = (start > 0 ? "…" : "") + text.slice(start, end) + (end < text.length ? "…" : "");
    caretCol = col - start + (start > 0 ? 1 : 0);
  }
  const shown = printable(text);
  // The caret line copies the tabs of the source line so the caret lands under the column
  // whatever the terminal's tab width.
  const indent = shown.slice(0, caretCol - 1).replace(/[^\t]/g, " ");
  return `${head}\n${shown}\n${indent}^`;
}

const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/**
 * A message within `maxMessage` characters: each long word in it (a name or number quoted
 * from the source) is cut in the middle first, then the message itself if it is still long.
 */
function shorten(message: string): string {
  if (message.length <= maxMessage) return message;
  const words = message.replace(/[^\s'"]{61,}/g, (w) => `${w.slice(0, 30)}…${w.slice(-29)}`);
  if (words.length <= maxMessage) return words;
  const half = maxMessage / 2;
  return `${words.slice(0, half)}…${words.slice(words.length - half + 1)}`;
}

/** Control characters (other than tab; C1 ones included) would garble the terminal; show them as '?'. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, "?");
}

/** Shows a character as it can be read in a message: 'x', or its code point when invisible. */
export function showChar(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0) || code === 0xfffd) {
    return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  }
  return `'${ch}'`;
}
