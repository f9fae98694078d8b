import { createToken, Lexer, type TokenType } from "chevrotain";

/**
 * Tokens of the ONC RPC language. Comments never reach the lexer: the preprocessor blanks
 * them. Keywords are those of Sun rpcgen's scanner; rpcgen's type aliases that are not
 * keywords there (`u_int`, `u_long`, `netobj`, ...) are identifiers the checker resolves.
 */

export const Identifier = createToken({ name: "Identifier", pattern: /[A-Za-z_][A-Za-z0-9_]*/, label: "identifier" });

function keyword(word: string): TokenType {
  return createToken({ name: `Kw_${word}`, pattern: new RegExp(word), longer_alt: Identifier, label: `'${word}'` });
}

export const Kw = {
  const: keyword("const"),
  enum: keyword("enum"),
  struct: keyword("struct"),
  union: keyword("union"),
  switch: keyword("switch"),
  case: keyword("case"),
  default: keyword("default"),
  typedef: keyword("typedef"),
  program: keyword("program"),
  version: keyword("version"),
  void: keyword("void"),
  unsigned: keyword("unsigned"),
  int: keyword("int"),
  hyper: keyword("hyper"),
  float: keyword("float"),
  double: keyword("double"),
  quadruple: keyword("quadruple"),
  bool: keyword("bool"),
  char: keyword("char"),
  short: keyword("short"),
  long: keyword("long"),
  string: keyword("string"),
  opaque: keyword("opaque"),
} as const;

/** Decimal, hex or octal; a leading minus belongs to the number, as in rpcgen. */
export const NumberLiteral = createToken({
  name: "NumberLiteral",
  pattern: /-?(?:0[xX][0-9a-fA-F]+|[0-9]+)/,
  label: "number",
});

/** Only a `const` may be a string; rpcgen passes it to C unchanged. */
export const StringLiteral = createToken({ name: "StringLiteral", pattern: /"[^"\n]*"/, label: "string" });

function punct(name: string, text: string): TokenType {
  return createToken({ name, pattern: text, label: `'${text}'` });
}

export const P = {
  lcurly: punct("LCurly", "{"),
  rcurly: punct("RCurly", "}"),
  lparen: punct("LParen", "("),
  rparen: punct("RParen", ")"),
  lsquare: punct("LSquare", "["),
  rsquare: punct("RSquare", "]"),
  langle: punct("LAngle", "<"),
  rangle: punct("RAngle", ">"),
  semi: punct("Semicolon", ";"),
  comma: punct("Comma", ","),
  colon: punct("Colon", ":"),
  equals: punct("Equals", "="),
  star: punct("Star", "*"),
} as const;

const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n\f\v]+/, group: Lexer.SKIPPED });

/** Keywords come before Identifier; `longer_alt` lets `structure` lex as one identifier. */
export const allTokens: TokenType[] = [WhiteSpace, ...Object.values(Kw), Identifier, NumberLiteral, StringLiteral, ...Object.values(P)];

/**
 * Only "\n" ends a line: the preprocessor has already split the text at "\r\n" and "\n", and
 * every excerpt counts lines that way, so a lone "\r" is white space within its line (as cpp
 * treats it), not a line break that would put every later position a line off.
 */
export const lexer = new Lexer(allTokens, {
  positionTracking: "full",
  ensureOptimizations: true,
  lineTerminatorsPattern: /\n/g,
  lineTerminatorCharacters: ["\n"],
});
