import { readFileSync, statSync } from "node:fs";

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

/** The largest source file read: a `.x` file is kilobytes; this stops a device or a mistake. */
export const maxSourceBytes = 64 * 1024 * 1024;

/** Why a source file cannot be read, as a message; thrown by `readSource`. */
export class SourceReadError extends Error {}

/**
 * Reads a source file, refusing what is not a regular file (`/dev/zero` would be read for
 * ever, a FIFO would block) and files over `maxSourceBytes`.
 */
export function readSource(path: string): string {
  const stat = statSync(path);
  if (!stat.isFile()) throw new SourceReadError(stat.isDirectory() ? "it is a directory" : "it is not a regular file");
  if (stat.size > maxSourceBytes) throw new SourceReadError(`it is larger than ${maxSourceBytes} bytes`);
  return readFileSync(path, "utf8");
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
