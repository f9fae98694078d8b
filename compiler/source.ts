/**
 * Source files and positions. Every later stage speaks in `Span`s: a file and a 1-based
 * line and column, resolved through the preprocessor's line map, so that an error in an
 * `#include`d file points into that file.
 */

export interface SourceFile {
  /** The path as the user named it (or as `#include` resolved it): used in messages. */
  readonly path: string;
  readonly text: string;
}

export interface Span {
  readonly file: SourceFile;
  /** 1-based. */
  readonly line: number;
  /** 1-based, counted in characters (a tab is one column). */
  readonly col: number;
}

const lineCache = new WeakMap<SourceFile, string[]>();

/** The text of one line of `file`, without its line terminator. */
export function lineText(file: SourceFile, line: number): string {
  let lines = lineCache.get(file);
  if (lines === undefined) {
    lines = file.text.split(/\r?\n/);
    lineCache.set(file, lines);
  }
  return lines[line - 1] ?? "";
}
