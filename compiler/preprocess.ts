import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { showChar, type DiagnosticBag } from "./diagnostics.js";
import { readSource, type SourceFile, type Span } from "./source.js";

/**
 * The C preprocessor, as far as `.x` files use it (Sun rpcgen runs `cpp` first):
 * `#include`, `#define`/`#undef` of object-like macros, `#ifdef`/`#ifndef`/`#if`/`#elif`/
 * `#else`/`#endif`, comments, and rpcgen's own `%` pass-through lines, which are C and
 * are dropped. The output is one text line per input line (spliced-in files included),
 * with comments, directives and excluded lines blanked, plus a line map from which every
 * later stage recovers the file, line and column of what it reports.
 */

/**
 * rpcgen defines one of these per output file (header, XDR routines, client, server); one
 * rpcgen-ts module is all four at once, so all four are defined. Every file of the system
 * corpus then yields all its types and programs: `#ifdef RPC_HDR` blocks there hold only
 * `%` lines. `RPCGEN_TS` lets a file tell this compiler apart.
 */
export const defaultDefines: ReadonlyMap<string, string> = new Map([
  ["RPC_HDR", "1"],
  ["RPC_XDR", "1"],
  ["RPC_CLNT", "1"],
  ["RPC_SVC", "1"],
  ["RPCGEN_TS", "1"],
]);

export interface PreprocessOptions {
  /** Macros defined before the first line (`-D`); defaults to `defaultDefines`. */
  readonly defines?: ReadonlyMap<string, string>;
  /** Directories searched by `#include`, after the including file's own directory. */
  readonly includeDirs?: readonly string[];
}

/** Searched last by `#include <...>`, as cpp does; rpcgen's own `.x` files live below it. */
export const systemIncludeDir = "/usr/include";

/** Where one output line came from, and how its columns map back. */
export interface LineOrigin {
  readonly file: SourceFile;
  readonly line: number;
  /**
   * Column pieces, sorted by `out`: output column `c >= out` maps to `src + (c - out)`,
   * or to `src` alone when `fixed` (text produced by a macro expansion points at the use).
   */
  readonly pieces: readonly ColumnPiece[];
}

interface ColumnPiece {
  readonly out: number;
  readonly src: number;
  readonly fixed: boolean;
}

/** A `%#define NAME value` line: C that rpcgen passes on, yet the IDL may use NAME as a bound. */
export interface PassThroughDefine {
  readonly name: string;
  readonly text: string;
  readonly span: Span;
}

/** A `%#include "x.h"` line for which an `x.x` exists: by rpcgen's convention, the header generated from it. */
export interface HeaderImport {
  readonly path: string;
  readonly span: Span;
}

export interface Preprocessed {
  readonly text: string;
  readonly lines: readonly LineOrigin[];
  /** Every file read, the main one first. */
  readonly files: readonly SourceFile[];
  readonly passThroughDefines: readonly PassThroughDefine[];
  readonly headerImports: readonly HeaderImport[];
}

/** Maps a 1-based position in the preprocessed text back to its source. */
export function originOf(pp: Preprocessed, line: number, col: number): Span {
  const origin = pp.lines[Math.min(line, pp.lines.length) - 1];
  if (origin === undefined) return { file: pp.files[0]!, line: 1, col: 1 };
  // The last piece that starts at or before the column, by binary search: a line of 10^5 macro
  // uses has 2 * 10^5 pieces, and every token on it asks.
  const pieces = origin.pieces;
  let lo = 0;
  let hi = pieces.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (pieces[mid]!.out <= col) lo = mid;
    else hi = mid - 1;
  }
  const piece = pieces[lo]!;
  return { file: origin.file, line: origin.line, col: piece.fixed ? piece.src : piece.src + (col - piece.out) };
}

const maxIncludeDepth = 64;

/**
 * Bounds on macro expansion. cpp's rescanning never expands a macro inside itself, so
 * expansion ends, but a macro whose value names another twice, forty deep, would produce
 * 2^40 tokens; bounded, it fails at once with the place of the use.
 */
export const expansionLimits = {
  /** Macros expanding inside each other. */
  depth: 64,
  /** Macro replacements made for one use of a macro, rescans included. */
  steps: 65_536,
  /** Characters that one use of a macro expands to. */
  length: 65_536,
  /** Replacements in a whole file (a use of a macro already expanded costs none). */
  totalSteps: 4_194_304,
  /** Characters by which expansion may lengthen a whole file. */
  totalGrowth: 16 * 1024 * 1024,
} as const;

/** An expansion past one of `expansionLimits`; the message says which. */
class ExpansionError extends Error {}

/** A name or other source text quoted in a message: long ones are cut in the middle. */
export function quoteSource(text: string, max = 60): string {
  if (text.length <= max) return text;
  const half = Math.floor((max - 1) / 2);
  return `${text.slice(0, half)}…${text.slice(text.length - half)}`;
}

interface Conditional {
  readonly span: Span;
  /** This branch's lines are kept. */
  active: boolean;
  /** Some branch of this group was taken (so `#else`/`#elif` are off). */
  taken: boolean;
  seenElse: boolean;
  /** The group sits inside an excluded region: nothing in it is kept. */
  readonly outerActive: boolean;
}

export function preprocess(
  main: SourceFile,
  diagnostics: DiagnosticBag,
  options: PreprocessOptions = {},
): Preprocessed {
  const macros = new Map(options.defines ?? defaultDefines);
  const includeDirs = options.includeDirs ?? [];
  const out: string[] = [];
  const lines: LineOrigin[] = [];
  const files: SourceFile[] = [];
  const stack: SourceFile[] = [];
  const passThroughDefines: PassThroughDefine[] = [];
  const headerImports: HeaderImport[] = [];

  /**
   * What a macro expands to where it is used outside any other macro, so that a line using
   * an expensive macro many times pays once; emptied whenever a macro is defined or undefined.
   */
  const expansions = new Map<string, string>();
  let totalSteps = 0;
  let growth = 0;
  /** After an expansion error nothing more is expanded: the output is not used, and each use would fail again. */
  let expansionFailed = false;

  const emit = (text: string, origin: LineOrigin) => {
    out.push(text);
    lines.push(origin);
  };

  function processFile(file: SourceFile): void {
    files.push(file);
    stack.push(file);
    const raw = file.text.split(/\r?\n/);
    const conds: Conditional[] = [];
    const active = () => conds.length === 0 || conds[conds.length - 1]!.active;
    let comment: Span | undefined; // where an open block comment began

    for (let i = 0; i < raw.length; i++) {
      const lineNo = i + 1;
      const identity: LineOrigin = { file, line: lineNo, pieces: [{ out: 1, src: 1, fixed: false }] };
      const startsInComment = comment !== undefined;
      const first = raw[i]!.search(/\S/);
      const lead = first < 0 ? "" : raw[i]![first]!;

      // A `%` line is C for rpcgen's output; its text (and any `\` continuation) is opaque.
      if (!startsInComment && lead === "%") {
        if (active()) passThrough(raw[i]!, { file, line: lineNo, col: first + 1 });
        emit("", identity);
        while (raw[i]!.endsWith("\\") && i + 1 < raw.length) emit("", { ...identity, line: ++i + 1 });
        continue;
      }

      const blanked = blankComments(raw[i]!, comment, file, lineNo);
      comment = blanked.open;

      if (!startsInComment && lead === "#") {
        let text = blanked.text;
        emit("", identity);
        // Directives continue over backslash-newline; the lines are joined once, at the end
        // (joining as they come is quadratic in a directive of 10^5 lines).
        const joined: string[] = [];
        while (text.endsWith("\\") && i + 1 < raw.length) {
          i++;
          const next = blankComments(raw[i]!, comment, file, i + 1);
          comment = next.open;
          joined.push(text.slice(0, -1));
          text = next.text;
          emit("", { ...identity, line: i + 1 });
        }
        joined.push(text);
        directive(joined.join(" ").trim().slice(1).trim(), { file, line: lineNo, col: first + 1 }, conds, active());
        continue;
      }

      if (!active()) {
        emit("", identity);
        continue;
      }
      const expanded = expandLine(blanked.text, file, lineNo);
      emit(expanded.text, { file, line: lineNo, pieces: expanded.pieces });
    }

    if (comment !== undefined) diagnostics.error(comment, "unterminated comment");
    for (const c of conds) diagnostics.error(c.span, "unterminated conditional: missing #endif");
    stack.pop();
  }

  function directive(body: string, span: Span, conds: Conditional[], isActive: boolean): void {
    const m = /^([A-Za-z_]+)\s*(.*)$/s.exec(body);
    if (body === "") return; // the null directive
    if (m === null) {
      // `# 12 "file"` line markers, as cpp writes them, carry nothing we need.
      if (/^\d/.test(body)) return;
      // Name the first character only: the rest of a malformed line may be anything, even binary.
      if (isActive) diagnostics.error(span, `malformed preprocessor directive: expected a name after '#' but found ${showChar(body[0]!)}`);
      return;
    }
    const name = m[1]!;
    const rest = m[2]!.trim();
    const top = conds[conds.length - 1];
    switch (name) {
      case "ifdef":
      case "ifndef": {
        const id = /^[A-Za-z_]\w*$/.exec(rest)?.[0];
        if (isActive && id === undefined) diagnostics.error(span, `#${name} needs one macro name`);
        const on = isActive && id !== undefined && macros.has(id) === (name === "ifdef");
        conds.push({ span, active: on, taken: on, seenElse: false, outerActive: isActive });
        return;
      }
      case "if": {
        const on = isActive && evaluate(rest, span, isActive) !== 0n;
        conds.push({ span, active: on, taken: on, seenElse: false, outerActive: isActive });
        return;
      }
      case "elif":
      case "else": {
        if (top === undefined) {
          diagnostics.error(span, `#${name} without #if`);
          return;
        }
        if (top.seenElse) {
          diagnostics.error(span, `#${name} after #else`);
          return;
        }
        if (name === "else") {
          top.seenElse = true;
          top.active = top.outerActive && !top.taken;
        } else {
          top.active = top.outerActive && !top.taken && evaluate(rest, span, top.outerActive) !== 0n;
        }
        top.taken ||= top.active;
        return;
      }
      case "endif":
        if (top === undefined) diagnostics.error(span, "#endif without #if");
        else conds.pop();
        return;
    }
    if (!isActive) return; // other directives in excluded regions are not even parsed
    switch (name) {
      case "define": {
        const d = /^([A-Za-z_]\w*)(\()?\s*(.*)$/s.exec(rest);
        if (d === null) diagnostics.error(span, "#define needs a macro name");
        else if (d[2] !== undefined) diagnostics.error(span, `function-like macro '${quoteSource(d[1]!)}' is not supported`);
        else {
          macros.set(d[1]!, d[3]!.trim());
          expansions.clear();
        }
        return;
      }
      case "undef":
        if (!/^[A-Za-z_]\w*$/.test(rest)) diagnostics.error(span, "#undef needs one macro name");
        else {
          macros.delete(rest);
          expansions.clear();
        }
        return;
      case "include":
        include(rest, span);
        return;
      case "error":
        diagnostics.error(span, `#error ${quoteSource(rest, 200)}`.trim());
        return;
      case "warning":
      case "pragma":
      case "ident":
      case "line":
        return;
      default:
        diagnostics.error(span, `unknown preprocessor directive '#${quoteSource(name)}'`);
    }
  }

  /** Looks for `name` as cpp would: beside the includer for "quoted" names, then -I, then the system. */
  function search(name: string, quoted: boolean, from: SourceFile): string | undefined {
    if (isAbsolute(name)) return existsSync(name) ? name : undefined;
    const dirs = [...(quoted ? [dirname(from.path)] : []), ...includeDirs, systemIncludeDir];
    return dirs.map((d) => join(d, name)).find((p) => existsSync(p));
  }

  /** Keeps what the IDL may depend on from a `%` line: a C macro or a generated header's source. */
  function passThrough(line: string, span: Span): void {
    const define = /^\s*%\s*#\s*define\s+([A-Za-z_]\w*)(?!\()\s*(.*?)\\?$/.exec(line);
    if (define !== null) {
      // The C compiler will not see the comments (`%#define FSHIFT 8 /* bits */`, rstat.x).
      const text = blankComments(define[2]!, undefined, span.file, span.line).text.trim();
      passThroughDefines.push({ name: define[1]!, text, span });
      return;
    }
    const header = /^\s*%\s*#\s*include\s*(?:"([^"]+)\.h"|<([^>]+)\.h>)/.exec(line);
    if (header === null) return;
    const path = search(`${header[1] ?? header[2]}.x`, header[1] !== undefined, span.file);
    if (path !== undefined && resolve(path) !== resolve(span.file.path)) headerImports.push({ path, span });
  }

  function include(rest: string, span: Span): void {
    const m = /^(?:"([^"]+)"|<([^>]+)>)$/.exec(rest);
    if (m === null) {
      diagnostics.error(span, `#include expects "file" or <file>`);
      return;
    }
    const name = m[1] ?? m[2]!;
    const found = search(name, m[1] !== undefined, span.file);
    if (found === undefined) {
      diagnostics.error(span, `cannot find include file '${name}'`);
      return;
    }
    const cycle = stack.findIndex((f) => resolve(f.path) === resolve(found));
    if (cycle >= 0) {
      const chain = [...stack.slice(cycle).map((f) => f.path), found].join(" -> ");
      diagnostics.error(span, `include cycle: ${chain}`);
      return;
    }
    if (stack.length >= maxIncludeDepth) {
      diagnostics.error(span, `includes nested deeper than ${maxIncludeDepth}`);
      return;
    }
    let text: string;
    try {
      text = readSource(found);
    } catch (e) {
      diagnostics.error(span, `cannot read include file '${found}': ${(e as Error).message}`);
      return;
    }
    processFile({ path: found, text });
  }

  /**
   * Replaces object-like macros in a code line. Text from an expansion keeps the column of
   * the macro's name, and the columns after it are shifted back, so positions stay exact.
   */
  function expandLine(text: string, file: SourceFile, lineNo: number): { text: string; pieces: ColumnPiece[] } {
    const pieces: ColumnPiece[] = [{ out: 1, src: 1, fixed: false }];
    if (macros.size === 0 || expansionFailed) return { text, pieces };
    let result = "";
    let last = 0;
    for (const m of text.matchAll(/[A-Za-z_]\w*/g)) {
      if (!macros.has(m[0])) continue;
      let replacement: string;
      try {
        replacement = expandUse(m[0]);
      } catch (e) {
        if (!(e instanceof ExpansionError)) throw e;
        diagnostics.error({ file, line: lineNo, col: m.index + 1 }, e.message);
        expansionFailed = true;
        return { text, pieces: [pieces[0]!] };
      }
      result += text.slice(last, m.index);
      const useCol = m.index + 1;
      pieces.push({ out: result.length + 1, src: useCol, fixed: true });
      result += replacement;
      last = m.index + m[0].length;
      pieces.push({ out: result.length + 1, src: last + 1, fixed: false });
    }
    if (last === 0) return { text, pieces: [pieces[0]!] };
    return { text: result + text.slice(last), pieces };
  }

  /** The expansion of one use of macro `id` outside any other macro, within `expansionLimits`. */
  function expandUse(id: string): string {
    let expansion = expansions.get(id);
    if (expansion === undefined) {
      expansion = expandText(macros.get(id)!, [id], { steps: 0 });
      expansions.set(id, expansion);
    }
    growth += expansion.length - id.length;
    if (growth > expansionLimits.totalGrowth) {
      throw new ExpansionError(`macro expansion makes the file more than ${expansionLimits.totalGrowth} characters longer`);
    }
    return expansion;
  }

  /**
   * cpp's rescanning: a macro's value is expanded again, but never a macro inside itself
   * (`active` holds the macros being expanded, outermost first).
   */
  function expandText(text: string, active: string[], budget: { steps: number }): string {
    let result = "";
    let last = 0;
    for (const m of text.matchAll(/[A-Za-z_]\w*/g)) {
      const id = m[0];
      const value = macros.get(id);
      if (value === undefined || active.includes(id)) continue;
      const use = quoteSource(active[0]!);
      if (active.length >= expansionLimits.depth) {
        throw new ExpansionError(`macro '${use}' expands macros nested more than ${expansionLimits.depth} deep`);
      }
      if (++budget.steps > expansionLimits.steps) {
        throw new ExpansionError(`macro '${use}' takes more than ${expansionLimits.steps} macro replacements to expand`);
      }
      if (++totalSteps > expansionLimits.totalSteps) {
        throw new ExpansionError(`macro expansion takes more than ${expansionLimits.totalSteps} replacements in this file`);
      }
      active.push(id);
      const replacement = expandText(value, active, budget);
      active.pop();
      result += text.slice(last, m.index) + replacement;
      last = m.index + id.length;
      if (result.length > expansionLimits.length) {
        throw new ExpansionError(`macro '${use}' expands to more than ${expansionLimits.length} characters`);
      }
    }
    if (last > 0) result += text.slice(last);
    else result = text;
    if (result.length > expansionLimits.length) {
      throw new ExpansionError(`macro '${quoteSource(active[0]!)}' expands to more than ${expansionLimits.length} characters`);
    }
    return result;
  }

  /** Evaluates a `#if` expression as cpp does: names that are not macros are 0. */
  function evaluate(expr: string, span: Span, report: boolean): bigint {
    const withDefined = expr.replace(
      /\bdefined\s*(?:\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))/g,
      (_, a?: string, b?: string) => (macros.has((a ?? b)!) ? "1" : "0"),
    );
    let expanded = withDefined;
    if (!expansionFailed) {
      try {
        expanded = withDefined.replace(/[A-Za-z_]\w*/g, (id) => (macros.has(id) ? expandUse(id) : id));
      } catch (e) {
        if (!(e instanceof ExpansionError)) throw e;
        if (report) diagnostics.error(span, e.message);
        expansionFailed = true;
        return 0n;
      }
    }
    try {
      return evaluateExpression(expanded);
    } catch (e) {
      if (report) diagnostics.error(span, `bad #if expression '${quoteSource(expr)}': ${(e as Error).message}`);
      return 0n;
    }
  }

  processFile(main);
  // The first output line of each source line: the order in which a reader meets it.
  const readAt = new Map<SourceFile, Map<number, number>>();
  lines.forEach((o, i) => {
    let byLine = readAt.get(o.file);
    if (byLine === undefined) readAt.set(o.file, (byLine = new Map()));
    if (!byLine.has(o.line)) byLine.set(o.line, i);
  });
  diagnostics.readingOrder = (span) => readAt.get(span.file)?.get(span.line);
  return { text: out.join("\n"), lines, files, passThroughDefines, headerImports };
}

/**
 * Blanks `/* … *\/` and `//` comments to spaces, so columns are kept. `open` is the span of a
 * block comment still open at the end of the line.
 */
function blankComments(
  line: string,
  open: Span | undefined,
  file: SourceFile,
  lineNo: number,
): { text: string; open: Span | undefined } {
  let text = "";
  let i = 0;
  // The next "/*" and "//" at or after i (-1: none), searched again only once passed: searching
  // at every comment would be quadratic in a line of many comments.
  let block = -2;
  let slash = -2;
  while (i < line.length) {
    if (open !== undefined) {
      const end = line.indexOf("*/", i);
      if (end < 0) {
        text += " ".repeat(line.length - i);
        return { text, open };
      }
      text += " ".repeat(end + 2 - i);
      i = end + 2;
      open = undefined;
      continue;
    }
    if (block !== -1 && block < i) block = line.indexOf("/*", i);
    if (slash !== -1 && slash < i) slash = line.indexOf("//", i);
    if (slash >= 0 && (block < 0 || slash < block)) {
      return { text: text + line.slice(i, slash) + " ".repeat(line.length - slash), open };
    }
    if (block < 0) return { text: text + line.slice(i), open };
    text += line.slice(i, block) + "  ";
    open = { file, line: lineNo, col: block + 1 };
    i = block + 2;
  }
  return { text, open };
}

/** Parentheses and unary operators nested deeper than this are refused, not a stack overflow. */
export const maxExpressionDepth = 256;

/** A small recursive-descent evaluator for cpp's integer expressions. */
export function evaluateExpression(src: string): bigint {
  // A number may carry C's suffixes (`2L`, `0x10u`); they do not change a #if's arithmetic.
  const tokens = src.match(/(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*|[A-Za-z_]\w*|&&|\|\||==|!=|<=|>=|<<|>>|\S/g) ?? [];
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => tokens[pos++];
  const expect = (t: string) => {
    if (next() !== t) throw new Error(`expected '${t}'`);
  };
  let depth = 0;

  // Operator groups from the loosest binding to the tightest, as in C.
  const levels = [["||"], ["&&"], ["|"], ["^"], ["&"], ["==", "!="], ["<", ">", "<=", ">="], ["<<", ">>"], ["+", "-"], ["*", "/", "%"]];
  const apply = (op: string, a: bigint, b: bigint): bigint => {
    const bool = (v: boolean) => (v ? 1n : 0n);
    switch (op) {
      case "||": return bool(a !== 0n || b !== 0n);
      case "&&": return bool(a !== 0n && b !== 0n);
      case "|": return a | b;
      case "^": return a ^ b;
      case "&": return a & b;
      case "==": return bool(a === b);
      case "!=": return bool(a !== b);
      case "<": return bool(a < b);
      case ">": return bool(a > b);
      case "<=": return bool(a <= b);
      case ">=": return bool(a >= b);
      case "<<": return a << b;
      case ">>": return a >> b;
      case "+": return a + b;
      case "-": return a - b;
      case "*": return a * b;
      default:
        if (b === 0n) throw new Error("division by zero");
        return op === "/" ? a / b : a % b;
    }
  };

  // cpp computes in intmax_t; wider values than this are refused rather than grown without end
  // (a chain of shifts and products would otherwise build numbers of millions of bits).
  const widest = 1n << 256n;
  const checked = (v: bigint): bigint => {
    if (v >= widest || v <= -widest) throw new Error("a value does not fit in 256 bits");
    return v;
  };
  const level = (n: number): bigint => {
    if (n === levels.length) return unary();
    let left = level(n + 1);
    while (levels[n]!.includes(peek() ?? "")) {
      const op = next()!;
      const right = level(n + 1);
      if ((op === "<<" || op === ">>") && (right > 256n || right < -256n)) throw new Error(`shift by ${right} bits`);
      left = checked(apply(op, left, right));
    }
    return left;
  };
  const unary = (): bigint => {
    if (++depth > maxExpressionDepth) throw new Error(`parentheses or unary operators nested more than ${maxExpressionDepth} deep`);
    try {
      return operand();
    } finally {
      depth--;
    }
  };
  const operand = (): bigint => {
    const t = next();
    if (t === undefined) throw new Error("unexpected end of expression");
    if (t === "!") return unary() === 0n ? 1n : 0n;
    if (t === "-") return checked(-unary());
    if (t === "+") return unary();
    if (t === "~") return ~unary();
    if (t === "(") {
      const v = level(0);
      expect(")");
      return v;
    }
    if (/^\d/.test(t)) {
      const digits = t.replace(/[uUlL]+$/, "");
      if (digits.replace(/^0[xX]?0*/, "").length > 78) throw new Error(`number ${quoteSource(digits)} does not fit in 256 bits`);
      if (!/^0\d/.test(digits)) return checked(BigInt(digits));
      if (/[89]/.test(digits)) throw new Error(`invalid octal number ${quoteSource(digits)}`);
      return checked(BigInt("0o" + digits.slice(1)));
    }
    if (/^[A-Za-z_]/.test(t)) return 0n;
    throw new Error(`unexpected '${quoteSource(t)}'`);
  };

  const value = level(0);
  if (pos < tokens.length) throw new Error(`unexpected '${quoteSource(tokens[pos]!)}'`);
  return value;
}
