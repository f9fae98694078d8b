import {
  EmbeddedActionsParser,
  EOF,
  MismatchedTokenException,
  type IParserErrorMessageProvider,
  type IRecognitionException,
  type IToken,
  type TokenType,
} from "chevrotain";
import type {
  BaseTypeName,
  ConstDefinition,
  Declaration,
  Definition,
  EnumDefinition,
  EnumMember,
  Identifier as IdentifierNode,
  ProcedureDefinition,
  ProcedureType,
  ProgramDefinition,
  Specification,
  StructDefinition,
  TypedefDefinition,
  TypeSpec,
  UnionArm,
  UnionDefinition,
  Value,
  VersionDefinition,
} from "./ast.js";
import { showChar, type DiagnosticBag } from "./diagnostics.js";
import { allTokens, Identifier, Kw, lexer, NumberLiteral, P, StringLiteral } from "./lexer.js";
import { originOf, quoteSource, type Preprocessed } from "./preprocess.js";
import type { Span } from "./source.js";

/**
 * The grammar of RFC 5531 §12 / RFC 4506 §6 as Sun rpcgen accepts it. Rules only build
 * syntax nodes; meaning (names, constants, bounds) is the checker's. Conversions that need a
 * real token run inside ACTION, since Chevrotain's recording phase calls rules with dummies.
 */

/** Rule names as a person would say them, for "expected …" messages. */
const ruleDescriptions: Record<string, string> = {
  definition: "a definition (const, enum, struct, union, typedef or program)",
  constDefinition: "a number, a constant name or a string",
  enumDefinition: "an enum member",
  structDefinition: "a field declaration",
  programDefinition: "'version'",
  versionDefinition: "a procedure",
  procedureDefinition: "an argument type or 'void'",
  typeSpecifier: "a type",
  declaration: "a declaration",
  value: "a number or a constant name",
  procedureResult: "a result type",
  procedureArgument: "an argument type",
  unionBody: "'case' or 'default'",
};

const keywords: ReadonlySet<TokenType> = new Set(Object.values(Kw));

function describe(token: IToken): string {
  if (token.tokenType === EOF) return "end of file";
  if (token.tokenType === Identifier) return `identifier '${token.image}'`;
  if (token.tokenType === NumberLiteral) return `number ${token.image}`;
  if (token.tokenType === StringLiteral) return `string ${token.image}`;
  // Says why a word that looks like a name is refused: `string program<>;`.
  if (keywords.has(token.tokenType)) return `keyword '${token.image}'`;
  return `'${token.image}'`;
}

function labelOf(t: TokenType): string {
  return t.LABEL ?? t.name;
}

const errorMessages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual, previous }) => {
    const message = `expected ${labelOf(expected)} but found ${describe(actual)}`;
    // `enum e { A, B, };`: C allows the comma, rpcgen does not.
    const trailingComma = previous?.tokenType === P.comma && actual.tokenType === P.rcurly;
    return trailingComma ? `${message}: the last member may not be followed by ','` : message;
  },
  buildNotAllInputParsedMessage: ({ firstRedundant }) => `unexpected ${describe(firstRedundant)}`,
  buildNoViableAltMessage: ({ actual, ruleName, customUserDescription }) =>
    `expected ${customUserDescription ?? ruleDescriptions[ruleName] ?? ruleName} but found ${describe(actual[0]!)}`,
  buildEarlyExitMessage: ({ actual, ruleName }) =>
    `expected ${ruleDescriptions[ruleName] ?? ruleName} but found ${describe(actual[0]!)}`,
};

const noSpan: Span = { file: { path: "", text: "" }, line: 0, col: 0 };

class RpcParser extends EmbeddedActionsParser {
  /** Set per parse; the recording phase runs with the dummy. */
  spanOf: (t: IToken) => Span = () => noSpan;
  numberError: (span: Span, text: string) => void = () => {};

  constructor() {
    super(allTokens, { errorMessageProvider: errorMessages, maxLookahead: 3 });
    this.performSelfAnalysis();
  }

  specification = this.RULE("specification", (): Specification => {
    const definitions: Definition[] = [];
    this.MANY(() => definitions.push(this.SUBRULE(this.definition)));
    return { definitions };
  });

  definition = this.RULE("definition", (): Definition =>
    this.OR([
      { ALT: () => this.SUBRULE(this.constDefinition) },
      { ALT: () => this.SUBRULE(this.enumDefinition) },
      { ALT: () => this.SUBRULE(this.structDefinition) },
      { ALT: () => this.SUBRULE(this.unionDefinition) },
      { ALT: () => this.SUBRULE(this.typedefDefinition) },
      { ALT: () => this.SUBRULE(this.programDefinition) },
    ]),
  );

  constDefinition = this.RULE("constDefinition", (): ConstDefinition => {
    this.CONSUME(Kw.const);
    const name = this.SUBRULE(this.identifier);
    this.CONSUME(P.equals);
    const value = this.OR([
      { ALT: () => this.SUBRULE(this.value) },
      {
        // rpcgen passes a string constant through to C as a #define.
        ALT: () => {
          const token = this.CONSUME(StringLiteral);
          return this.ACTION(() => ({
            kind: "string" as const,
            value: token.image.slice(1, -1),
            span: this.spanOf(token),
          }));
        },
      },
    ]);
    this.CONSUME(P.semi);
    return { kind: "const", name, value };
  });

  enumDefinition = this.RULE("enumDefinition", (): EnumDefinition => {
    this.CONSUME(Kw.enum);
    const name = this.SUBRULE(this.identifier);
    const members: EnumMember[] = [];
    this.CONSUME(P.lcurly);
    this.AT_LEAST_ONE_SEP({
      SEP: P.comma,
      DEF: () => {
        const member = this.SUBRULE2(this.identifier);
        let value: Value | undefined;
        this.OPTION(() => {
          this.CONSUME(P.equals);
          value = this.SUBRULE(this.value);
        });
        members.push(value === undefined ? { name: member } : { name: member, value });
      },
    });
    this.CONSUME(P.rcurly);
    this.CONSUME(P.semi);
    return { kind: "enum", name, members };
  });

  structDefinition = this.RULE("structDefinition", (): StructDefinition => {
    this.CONSUME(Kw.struct);
    const name = this.SUBRULE(this.identifier);
    const fields: Declaration[] = [];
    this.CONSUME(P.lcurly);
    this.AT_LEAST_ONE(() => {
      fields.push(this.SUBRULE(this.declaration));
      this.CONSUME(P.semi);
    });
    this.CONSUME(P.rcurly);
    this.CONSUME2(P.semi);
    return { kind: "struct", name, fields };
  });

  unionDefinition = this.RULE("unionDefinition", (): UnionDefinition => {
    this.CONSUME(Kw.union);
    const name = this.SUBRULE(this.identifier);
    this.CONSUME(Kw.switch);
    this.CONSUME(P.lparen);
    const discriminant = this.SUBRULE(this.declaration);
    this.CONSUME(P.rparen);
    this.CONSUME(P.lcurly);
    const body = this.SUBRULE(this.unionBody);
    this.CONSUME(P.rcurly);
    this.CONSUME(P.semi);
    return { kind: "union", name, discriminant, ...body };
  });

  unionBody = this.RULE("unionBody", (): Pick<UnionDefinition, "arms" | "defaultArm" | "defaultSpan"> => {
    const arms: UnionArm[] = [];
    let defaultArm: Declaration | undefined;
    let defaultSpan: Span | undefined;
    this.AT_LEAST_ONE(() => {
      const labels: Value[] = [];
      this.AT_LEAST_ONE2(() => {
        this.CONSUME(Kw.case);
        labels.push(this.SUBRULE(this.value));
        this.CONSUME(P.colon);
      });
      const declaration = this.SUBRULE(this.declaration);
      this.CONSUME(P.semi);
      arms.push({ labels, declaration });
    });
    this.OPTION(() => {
      const token = this.CONSUME(Kw.default);
      this.CONSUME2(P.colon);
      defaultArm = this.SUBRULE2(this.declaration);
      this.CONSUME2(P.semi);
      defaultSpan = this.ACTION(() => this.spanOf(token));
    });
    return defaultArm === undefined ? { arms } : { arms, defaultArm, defaultSpan: defaultSpan! };
  });

  typedefDefinition = this.RULE("typedefDefinition", (): TypedefDefinition => {
    const token = this.CONSUME(Kw.typedef);
    const declaration = this.SUBRULE(this.declaration);
    this.CONSUME(P.semi);
    return { kind: "typedef", declaration, span: this.ACTION(() => this.spanOf(token)) };
  });

  programDefinition = this.RULE("programDefinition", (): ProgramDefinition => {
    this.CONSUME(Kw.program);
    const name = this.SUBRULE(this.identifier);
    const versions: VersionDefinition[] = [];
    this.CONSUME(P.lcurly);
    this.AT_LEAST_ONE(() => versions.push(this.SUBRULE(this.versionDefinition)));
    this.CONSUME(P.rcurly);
    this.CONSUME(P.equals);
    const number = this.SUBRULE(this.value);
    this.CONSUME(P.semi);
    return { kind: "program", name, versions, number };
  });

  versionDefinition = this.RULE("versionDefinition", (): VersionDefinition => {
    this.CONSUME(Kw.version);
    const name = this.SUBRULE(this.identifier);
    const procedures: ProcedureDefinition[] = [];
    this.CONSUME(P.lcurly);
    this.AT_LEAST_ONE(() => procedures.push(this.SUBRULE(this.procedureDefinition)));
    this.CONSUME(P.rcurly);
    this.CONSUME(P.equals);
    const number = this.SUBRULE(this.value);
    this.CONSUME(P.semi);
    return { name, procedures, number };
  });

  procedureDefinition = this.RULE("procedureDefinition", (): ProcedureDefinition => {
    const result = this.SUBRULE(this.procedureResult);
    const name = this.SUBRULE(this.identifier);
    const args: ProcedureType[] = [];
    this.CONSUME(P.lparen);
    this.AT_LEAST_ONE_SEP({ SEP: P.comma, DEF: () => args.push(this.SUBRULE(this.procedureArgument)) });
    this.CONSUME(P.rparen);
    this.CONSUME(P.equals);
    const number = this.SUBRULE(this.value);
    this.CONSUME(P.semi);
    return { name, result, args, number };
  });

  /** `void`, `T`, `string`, `string<n>`. */
  procedureResult = this.RULE("procedureResult", (): ProcedureType =>
    this.OR([
      { ALT: () => this.SUBRULE(this.voidType) },
      {
        ALT: () => {
          const type = this.SUBRULE(this.typeSpecifier);
          const bound = this.OPTION(() => this.SUBRULE(this.angleBound));
          return this.procedureType(type, bound, false);
        },
      },
    ]),
  );

  /** `void`, `T [name]`, `T * [name]`, `string [name]`, `string<n> [name]`. */
  procedureArgument = this.RULE("procedureArgument", (): ProcedureType =>
    this.OR([
      { ALT: () => this.SUBRULE(this.voidType) },
      {
        ALT: () => {
          const type = this.SUBRULE(this.typeSpecifier);
          const before = this.OPTION(() => this.CONSUME(Identifier));
          let after: IToken | undefined;
          const star = this.OPTION2(() => {
            this.CONSUME(P.star);
            after = this.OPTION3(() => this.CONSUME2(Identifier));
            return true;
          });
          const bound = this.OPTION4(() => this.SUBRULE(this.angleBound));
          const name = (before ?? after)?.image;
          const argument = this.procedureType(type, bound, star === true);
          return name === undefined ? argument : { ...argument, name };
        },
      },
    ]),
  );

  voidType = this.RULE("voidType", (): ProcedureType => {
    const token = this.CONSUME(Kw.void);
    return this.ACTION(() => {
      const span = this.spanOf(token);
      return { shape: "plain", type: { kind: "void", span }, span };
    });
  });

  /** `<n>` or `<>`; the outer option says whether the angle brackets were there at all. */
  angleBound = this.RULE("angleBound", (): { bound: Value | undefined } => {
    this.CONSUME(P.langle);
    const bound = this.OPTION(() => this.SUBRULE(this.value));
    this.CONSUME(P.rangle);
    return { bound };
  });

  declaration = this.RULE("declaration", (): Declaration =>
    this.OR([
      {
        ALT: () => {
          const token = this.CONSUME(Kw.void);
          return { kind: "void" as const, span: this.ACTION(() => this.spanOf(token)) };
        },
      },
      {
        ALT: () => {
          const type = this.SUBRULE(this.typeSpecifier);
          return this.OR2({
            ERR_MSG: "a name",
            DEF: [
              {
                ALT: () => {
                  this.CONSUME(P.star);
                  const name = this.SUBRULE(this.identifier);
                  return { kind: "optional" as const, type, name, span: type.span };
                },
              },
              {
                ALT: () => {
                  const name = this.SUBRULE2(this.identifier);
                  return this.OR3([
                    {
                      ALT: () => {
                        this.CONSUME(P.lsquare);
                        const bound = this.SUBRULE(this.value);
                        this.CONSUME(P.rsquare);
                        return { kind: "fixed" as const, type, name, bound, span: type.span };
                      },
                    },
                    {
                      ALT: () => {
                        const { bound } = this.SUBRULE(this.angleBound);
                        return bound === undefined
                          ? { kind: "variable" as const, type, name, span: type.span }
                          : { kind: "variable" as const, type, name, bound, span: type.span };
                      },
                    },
                    { ALT: () => ({ kind: "plain" as const, type, name, span: type.span }) },
                  ]);
                },
              },
            ],
          });
        },
      },
    ]),
  );

  typeSpecifier = this.RULE("typeSpecifier", (): TypeSpec =>
    this.OR([
      {
        ALT: () => {
          const token = this.CONSUME(Kw.unsigned);
          const which = this.OPTION(() =>
            this.OR2([
              { ALT: () => this.CONSUME(Kw.int) },
              { ALT: () => this.CONSUME(Kw.hyper) },
              { ALT: () => this.CONSUME(Kw.char) },
              { ALT: () => this.CONSUME(Kw.short) },
              { ALT: () => this.CONSUME(Kw.long) },
            ]),
          );
          return this.base(`unsigned ${which?.image ?? "int"}` as BaseTypeName, token);
        },
      },
      {
        ALT: () => {
          const token = this.OR3([
            { ALT: () => this.CONSUME2(Kw.int) },
            { ALT: () => this.CONSUME2(Kw.hyper) },
            { ALT: () => this.CONSUME2(Kw.char) },
            { ALT: () => this.CONSUME2(Kw.short) },
            { ALT: () => this.CONSUME2(Kw.long) },
            { ALT: () => this.CONSUME(Kw.float) },
            { ALT: () => this.CONSUME(Kw.double) },
            { ALT: () => this.CONSUME(Kw.quadruple) },
            { ALT: () => this.CONSUME(Kw.bool) },
            { ALT: () => this.CONSUME(Kw.string) },
            { ALT: () => this.CONSUME(Kw.opaque) },
          ]);
          return this.base(token.image as BaseTypeName, token);
        },
      },
      {
        ALT: () => {
          const tag = this.OR4([
            { ALT: () => this.CONSUME(Kw.struct) },
            { ALT: () => this.CONSUME(Kw.enum) },
            { ALT: () => this.CONSUME(Kw.union) },
          ]);
          const name = this.SUBRULE(this.identifier);
          return this.ACTION(() => ({
            kind: "named" as const,
            name: name.name,
            tag: tag.image as "struct" | "enum" | "union",
            span: this.spanOf(tag),
          }));
        },
      },
      {
        ALT: () => {
          const name = this.SUBRULE2(this.identifier);
          return { kind: "named" as const, name: name.name, span: name.span };
        },
      },
    ]),
  );

  value = this.RULE("value", (): Value =>
    this.OR([
      {
        ALT: () => {
          const token = this.CONSUME(NumberLiteral);
          return this.ACTION(() => {
            const span = this.spanOf(token);
            return { kind: "literal" as const, value: this.number(token.image, span), text: token.image, span };
          });
        },
      },
      {
        ALT: () => {
          const name = this.SUBRULE(this.identifier);
          return { kind: "name" as const, name: name.name, span: name.span };
        },
      },
    ]),
  );

  identifier = this.RULE("identifier", (): IdentifierNode => {
    const token = this.CONSUME(Identifier);
    return this.ACTION(() => ({ name: token.image, span: this.spanOf(token) }));
  });

  private base(name: BaseTypeName, token: IToken): TypeSpec {
    return this.ACTION(() => ({ kind: "base" as const, name, span: this.spanOf(token) }));
  }

  private procedureType(type: TypeSpec, angle: { bound: Value | undefined } | undefined, star: boolean): ProcedureType {
    const shape = angle !== undefined ? "variable" : star ? "optional" : "plain";
    const bound = angle?.bound;
    return bound === undefined ? { shape, type, span: type.span } : { shape, type, bound, span: type.span };
  }

  /** Decimal, hex (`0x`) or octal (leading `0`), as C reads them. */
  private number(text: string, span: Span): bigint {
    const negative = text.startsWith("-");
    const digits = negative ? text.slice(1) : text;
    // Every bound and number in XDR fits in 64 bits; converting a megabyte of digits would not.
    if (digits.replace(/^0[xX]?0*/, "").length > 40) {
      this.numberError(span, `number ${quoteSource(text)} is too large`);
      return 0n;
    }
    let value: bigint;
    if (/^0[0-9]+$/.test(digits)) {
      if (/[89]/.test(digits)) {
        this.numberError(span, `invalid octal number ${text}`);
        return 0n;
      }
      value = BigInt("0o" + digits.slice(1));
    } else {
      value = BigInt(digits);
    }
    return negative ? -value : value;
  }
}

/** A `;` missing at the end of a line: the token found instead starts a later line. */
function missingSemicolon(e: IRecognitionException): e is MismatchedTokenException {
  return (
    e instanceof MismatchedTokenException &&
    e.message.startsWith(`expected ${labelOf(P.semi)} `) &&
    e.previousToken.endLine! < e.token.startLine!
  );
}

let parser: RpcParser | undefined;

/** Lexes and parses preprocessed text. Syntax errors are fatal for the file: undefined is returned. */
export function parse(pp: Preprocessed, diagnostics: DiagnosticBag): Specification | undefined {
  const lexed = lexer.tokenize(pp.text);
  if (lexed.errors.length > 0) {
    // One message for the first bad character: a binary file would otherwise yield thousands.
    const e = lexed.errors[0]!;
    diagnostics.error(originOf(pp, e.line!, e.column!), `unexpected character ${showChar(pp.text[e.offset]!)}`);
    return undefined;
  }
  parser ??= new RpcParser();
  parser.spanOf = (t) => originOf(pp, t.startLine!, t.startColumn!);
  parser.numberError = (span, message) => diagnostics.error(span, message);
  parser.input = lexed.tokens;
  const spec = parser.specification();
  const errors = [...parser.errors];
  // The parser is kept for the next file, but not the tokens (some 200 bytes each, 280 MB for
  // 10^5 definitions) through checking and emission.
  parser.input = [];
  if (errors.length > 0) {
    const e = errors[0]!;
    const last = lexed.tokens[lexed.tokens.length - 1];
    if (e.token.tokenType === EOF || Number.isNaN(e.token.startOffset)) {
      const span = last ? originOf(pp, last.endLine!, last.endColumn! + 1) : originOf(pp, 1, 1);
      diagnostics.error(span, `unexpected end of file: ${e.message.replace(/ but found end of file$/, "")}`);
    } else if (missingSemicolon(e)) {
      // A terminator belongs to what it ends: point just after it, not at the next line's first token.
      const p = e.previousToken;
      diagnostics.error(originOf(pp, p.endLine!, p.endColumn! + 1), `expected ';' after ${describe(p)}`);
    } else {
      diagnostics.error(parser.spanOf(e.token), e.message);
    }
    return undefined;
  }
  return spec;
}
