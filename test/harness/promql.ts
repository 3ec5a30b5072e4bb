/**
 * A small PromQL parser for tests: enough of the language to say which metrics and labels an expression
 * uses, where, and which labels its result carries, so that a Grafana dashboard can be checked against a
 * real /metrics without a Prometheus server.
 *
 * It parses the whole expression grammar (selectors, ranges and subqueries, offset/@, functions,
 * aggregations with by/without before or after, binary operators with precedence, bool, on/ignoring,
 * group_left/right) and throws on what it does not understand, including an unknown function name.
 * Grafana variables (`$name`, `${name}`, `${name:format}`) are accepted where a number or a duration may
 * stand and inside strings, and are collected.
 */

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export type Node =
  | { kind: 'number' }
  | { kind: 'string'; value: string }
  | { kind: 'selector'; name: string | null; matchers: Matcher[] }
  | { kind: 'range'; arg: Node; subquery: boolean }
  | { kind: 'aggregate'; op: string; grouping: Grouping | null; param: Node | null; arg: Node }
  | { kind: 'call'; func: string; args: Node[] }
  | { kind: 'binary'; op: string; lhs: Node; rhs: Node; matching: VectorMatching | null }
  | { kind: 'unary'; arg: Node }
  | { kind: 'paren'; arg: Node };

export interface Grouping {
  without: boolean;
  labels: string[];
}

export interface VectorMatching {
  /** `on` (true) or `ignoring` (false). */
  on: boolean;
  labels: string[];
  group: 'left' | 'right' | null;
  include: string[];
}

export interface Parsed {
  root: Node;
  /** Grafana variables the expression refers to, without `$`/braces/format. */
  variables: Set<string>;
}

export const AGGREGATIONS = new Set(['sum', 'avg', 'count', 'min', 'max', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'limitk', 'limit_ratio']);
const WITH_PARAM = new Set(['topk', 'bottomk', 'quantile', 'count_values', 'limitk', 'limit_ratio']);

/** PromQL's functions (Prometheus 2.x/3.x). */
export const FUNCTIONS = new Set([
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'avg_over_time', 'ceil', 'changes',
  'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh', 'count_over_time', 'day_of_month', 'day_of_week', 'day_of_year',
  'days_in_month', 'deg', 'delta', 'deriv', 'exp', 'floor', 'histogram_avg', 'histogram_count', 'histogram_fraction',
  'histogram_quantile', 'histogram_stddev', 'histogram_stdvar', 'histogram_sum', 'holt_winters', 'double_exponential_smoothing',
  'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'last_over_time', 'ln', 'log10', 'log2',
  'mad_over_time', 'max_over_time', 'min_over_time', 'minute', 'month', 'pi', 'predict_linear', 'present_over_time',
  'quantile_over_time', 'rad', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sin', 'sinh', 'sort', 'sort_by_label',
  'sort_by_label_desc', 'sort_desc', 'sqrt', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh',
  'time', 'timestamp', 'vector', 'year',
]);

/** Functions whose result is a scalar or has no labels of its input. */
const SCALAR_FUNCTIONS = new Set(['scalar', 'time', 'pi']);
const NO_LABEL_FUNCTIONS = new Set(['vector', 'absent', 'absent_over_time']);

const PRECEDENCE: Record<string, number> = {
  or: 1,
  and: 2,
  unless: 2,
  '==': 3,
  '!=': 3,
  '<=': 3,
  '<': 3,
  '>=': 3,
  '>': 3,
  '+': 4,
  '-': 4,
  '*': 5,
  '/': 5,
  '%': 5,
  atan2: 5,
  '^': 6,
};

type TokenKind = 'ident' | 'number' | 'duration' | 'string' | 'var' | 'punct' | 'eof';
interface Token {
  kind: TokenKind;
  text: string;
  /** For strings: the unescaped value. For vars: the variable name. */
  value: string;
  pos: number;
}

export class PromQLError extends Error {
  constructor(expr: string, pos: number, reason: string) {
    super(`${reason} at ${pos} in ${JSON.stringify(expr)}`);
  }
}

const VARIABLE = /\$(?:\{([a-zA-Z_]\w*)(?::[\w-]+)?\}|([a-zA-Z_]\w*))|\[\[([a-zA-Z_]\w*)(?::[\w-]+)?\]\]/g;

function variablesIn(text: string, into: Set<string>): void {
  for (const m of text.matchAll(VARIABLE)) into.add(m[1] ?? m[2] ?? m[3]);
}

function lex(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let brackets = 0;
  const push = (kind: TokenKind, text: string, value = text) => {
    tokens.push({ kind, text, value, pos: i });
    i += text.length;
  };
  while (i < expr.length) {
    const rest = expr.slice(i);
    const c = expr[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      const nl = expr.indexOf('\n', i);
      i = nl === -1 ? expr.length : nl;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let value = '';
      for (;;) {
        if (j >= expr.length) throw new PromQLError(expr, i, 'unterminated string');
        const d = expr[j];
        if (d === c) break;
        if (d === '\\' && c !== '`') {
          const e = expr[j + 1];
          value += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          j += 2;
          continue;
        }
        value += d;
        j++;
      }
      push('string', expr.slice(i, j + 1), value);
      continue;
    }
    const variable = /^\$(?:\{([a-zA-Z_]\w*)(?::[\w-]+)?\}|([a-zA-Z_]\w*))/.exec(rest);
    if (variable !== null) {
      push('var', variable[0], variable[1] ?? variable[2]);
      continue;
    }
    const duration = /^(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w.])/.exec(rest);
    if (duration !== null) {
      push('duration', duration[0]);
      continue;
    }
    const number = /^(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.])/.exec(rest);
    if (number !== null) {
      push('number', number[0]);
      continue;
    }
    // Inside [...] a colon separates a subquery's range from its step; elsewhere it may be part of a name.
    const ident = (brackets > 0 ? /^[a-zA-Z_][a-zA-Z0-9_]*/ : /^[a-zA-Z_:][a-zA-Z0-9_:]*/).exec(rest);
    if (ident !== null) {
      push('ident', ident[0]);
      continue;
    }
    const punct = /^(?:==|!=|<=|>=|=~|!~|[-+*/%^<>=(){}[\],:@])/.exec(rest);
    if (punct === null) throw new PromQLError(expr, i, `unexpected ${JSON.stringify(c)}`);
    if (punct[0] === '[') brackets++;
    if (punct[0] === ']') brackets--;
    push('punct', punct[0]);
  }
  tokens.push({ kind: 'eof', text: '', value: '', pos: expr.length });
  return tokens;
}

class Parser {
  private i = 0;
  readonly variables = new Set<string>();

  constructor(
    private readonly expr: string,
    private readonly tokens: Token[],
  ) {
    for (const t of tokens) {
      if (t.kind === 'var') this.variables.add(t.value);
      if (t.kind === 'string') variablesIn(t.value, this.variables);
    }
  }

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)];
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  private fail(reason: string, t: Token = this.peek()): never {
    throw new PromQLError(this.expr, t.pos, `${reason}, found ${t.kind === 'eof' ? 'the end' : JSON.stringify(t.text)}`);
  }

  private isPunct(text: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'punct' && t.text === text;
  }

  private isIdent(text: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'ident' && t.text === text;
  }

  private expect(text: string): Token {
    if (!this.isPunct(text)) this.fail(`expected ${JSON.stringify(text)}`);
    return this.next();
  }

  parse(): Node {
    const node = this.expression(0);
    if (this.peek().kind !== 'eof') this.fail('expected the end of the expression');
    return node;
  }

  /** The binary operator at the cursor, if any. */
  private operator(): string | null {
    const t = this.peek();
    if (t.kind === 'punct' && Object.hasOwn(PRECEDENCE, t.text)) return t.text;
    if (t.kind === 'ident' && ['and', 'or', 'unless', 'atan2'].includes(t.text)) return t.text;
    return null;
  }

  private expression(minPrecedence: number): Node {
    let lhs = this.unary();
    for (;;) {
      const op = this.operator();
      if (op === null) return lhs;
      const precedence = PRECEDENCE[op];
      if (precedence < minPrecedence) return lhs;
      this.next();
      if (this.isIdent('bool')) this.next();
      let matching: VectorMatching | null = null;
      if (this.isIdent('on') || this.isIdent('ignoring')) {
        const on = this.next().text === 'on';
        matching = { on, labels: this.labelList(), group: null, include: [] };
        if (this.isIdent('group_left') || this.isIdent('group_right')) {
          matching.group = this.next().text === 'group_left' ? 'left' : 'right';
          if (this.isPunct('(')) matching.include = this.labelList();
        }
      }
      // ^ is right-associative, everything else left-associative.
      const rhs = this.expression(op === '^' ? precedence : precedence + 1);
      lhs = { kind: 'binary', op, lhs, rhs, matching };
    }
  }

  private unary(): Node {
    if (this.isPunct('-') || this.isPunct('+')) {
      this.next();
      // Unary minus binds less tightly than ^ (so -2^2 is -4).
      return { kind: 'unary', arg: this.expression(PRECEDENCE['^']) };
    }
    return this.postfix(this.primary());
  }

  private postfix(node: Node): Node {
    for (;;) {
      if (this.isPunct('[')) {
        this.next();
        this.durationOrVariable();
        let subquery = false;
        if (this.isPunct(':')) {
          subquery = true;
          this.next();
          if (!this.isPunct(']')) this.durationOrVariable();
        }
        this.expect(']');
        node = { kind: 'range', arg: node, subquery };
      } else if (this.isIdent('offset')) {
        this.next();
        if (this.isPunct('-')) this.next();
        this.durationOrVariable();
      } else if (this.isPunct('@')) {
        this.next();
        const t = this.next();
        if ((t.text === 'start' || t.text === 'end') && this.isPunct('(')) {
          this.next();
          this.expect(')');
        } else if (t.kind !== 'number' && t.kind !== 'var') this.fail('expected a timestamp after @', t);
      } else return node;
    }
  }

  private durationOrVariable(): void {
    const t = this.next();
    if (t.kind !== 'duration' && t.kind !== 'var' && t.kind !== 'number') this.fail('expected a duration', t);
  }

  private primary(): Node {
    const t = this.peek();
    switch (t.kind) {
      case 'number':
      case 'duration':
      case 'var':
        this.next();
        return { kind: 'number' };
      case 'string':
        this.next();
        return { kind: 'string', value: t.value };
      case 'punct':
        if (t.text === '(') {
          this.next();
          const arg = this.expression(0);
          this.expect(')');
          return { kind: 'paren', arg };
        }
        if (t.text === '{') return { kind: 'selector', name: null, matchers: this.matchers() };
        return this.fail('expected an expression');
      case 'ident':
        break;
      default:
        return this.fail('expected an expression');
    }
    const name = t.text;
    if (/^(inf|nan)$/i.test(name)) {
      this.next();
      return { kind: 'number' };
    }
    if (AGGREGATIONS.has(name) && (this.isPunct('(', 1) || this.isIdent('by', 1) || this.isIdent('without', 1))) return this.aggregate();
    if (this.isPunct('(', 1)) {
      if (!FUNCTIONS.has(name)) this.fail(`unknown function ${name}`);
      this.next();
      return { kind: 'call', func: name, args: this.args() };
    }
    if (['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2'].includes(name)) {
      this.fail(`keyword ${name} where an expression should be`);
    }
    this.next();
    return { kind: 'selector', name, matchers: this.isPunct('{') ? this.matchers() : [] };
  }

  private aggregate(): Node {
    const op = this.next().text;
    let grouping = this.grouping();
    const args = this.args();
    const after = this.grouping();
    if (grouping !== null && after !== null) this.fail(`${op}: by/without given twice`);
    grouping ??= after;
    const expected = WITH_PARAM.has(op) ? 2 : 1;
    if (args.length !== expected) this.fail(`${op} takes ${expected} argument(s), got ${args.length}`);
    return { kind: 'aggregate', op, grouping, param: expected === 2 ? args[0] : null, arg: args[expected - 1] };
  }

  private grouping(): Grouping | null {
    if (!this.isIdent('by') && !this.isIdent('without')) return null;
    const without = this.next().text === 'without';
    return { without, labels: this.labelList() };
  }

  private labelList(): string[] {
    this.expect('(');
    const labels: string[] = [];
    while (!this.isPunct(')')) {
      const t = this.next();
      if (t.kind !== 'ident' || !/^[a-zA-Z_]\w*$/.test(t.text)) this.fail('expected a label name', t);
      labels.push(t.text);
      if (this.isPunct(',')) this.next();
      else if (!this.isPunct(')')) this.fail('expected "," or ")"');
    }
    this.next();
    return labels;
  }

  private args(): Node[] {
    this.expect('(');
    const args: Node[] = [];
    while (!this.isPunct(')')) {
      args.push(this.expression(0));
      if (this.isPunct(',')) this.next();
      else if (!this.isPunct(')')) this.fail('expected "," or ")"');
    }
    this.next();
    return args;
  }

  private matchers(): Matcher[] {
    this.expect('{');
    const matchers: Matcher[] = [];
    while (!this.isPunct('}')) {
      const label = this.next();
      if (label.kind !== 'ident' || !/^[a-zA-Z_]\w*$/.test(label.text)) this.fail('expected a label name', label);
      const op = this.next();
      if (op.kind !== 'punct' || !['=', '!=', '=~', '!~'].includes(op.text)) this.fail('expected a label matcher operator', op);
      const value = this.next();
      if (value.kind !== 'string') this.fail('expected a quoted label value', value);
      matchers.push({ label: label.text, op: op.text as Matcher['op'], value: value.value });
      if (this.isPunct(',')) this.next();
      else if (!this.isPunct('}')) this.fail('expected "," or "}"');
    }
    this.next();
    return matchers;
  }
}

export function parsePromQL(expr: string): Parsed {
  const parser = new Parser(expr, lex(expr));
  const root = parser.parse();
  return { root, variables: parser.variables };
}

/** Every node of the tree, each with its ancestors (closest last). */
export function* walk(node: Node, ancestors: Node[] = []): Generator<{ node: Node; ancestors: Node[] }> {
  yield { node, ancestors };
  const inner = [...ancestors, node];
  switch (node.kind) {
    case 'range':
    case 'unary':
    case 'paren':
      yield* walk(node.arg, inner);
      break;
    case 'aggregate':
      if (node.param !== null) yield* walk(node.param, inner);
      yield* walk(node.arg, inner);
      break;
    case 'call':
      for (const arg of node.args) yield* walk(arg, inner);
      break;
    case 'binary':
      yield* walk(node.lhs, inner);
      yield* walk(node.rhs, inner);
      break;
    default:
      break;
  }
}

/** True for an expression whose value is a scalar, not a vector. */
export function isScalar(node: Node): boolean {
  switch (node.kind) {
    case 'number':
      return true;
    case 'paren':
    case 'unary':
      return isScalar(node.arg);
    case 'call':
      return SCALAR_FUNCTIONS.has(node.func);
    case 'binary':
      return isScalar(node.lhs) && isScalar(node.rhs);
    default:
      return false;
  }
}

/**
 * The labels the result of `node` can carry, given the labels each metric's series have (the metric name
 * itself is not a label here). An over-approximation where PromQL is dynamic (e.g. `or`).
 */
export function resultLabels(node: Node, labelsOf: (metric: string) => ReadonlySet<string>): Set<string> {
  const of = (n: Node) => resultLabels(n, labelsOf);
  switch (node.kind) {
    case 'number':
    case 'string':
      return new Set();
    case 'selector':
      return node.name === null ? new Set() : new Set(labelsOf(node.name));
    case 'range':
    case 'unary':
    case 'paren':
      return of(node.arg);
    case 'aggregate': {
      const inner = of(node.arg);
      if (['topk', 'bottomk', 'limitk', 'limit_ratio'].includes(node.op)) return inner;
      const out = node.grouping === null ? new Set<string>() : node.grouping.without ? new Set([...inner].filter((l) => !node.grouping?.labels.includes(l))) : new Set(node.grouping.labels);
      if (node.op === 'count_values' && node.param?.kind === 'string') out.add(node.param.value);
      return out;
    }
    case 'call': {
      if (SCALAR_FUNCTIONS.has(node.func) || NO_LABEL_FUNCTIONS.has(node.func)) return new Set();
      if (node.func === 'histogram_quantile' || node.func === 'histogram_fraction') {
        const out = of(node.args[node.args.length - 1]);
        out.delete('le');
        return out;
      }
      if (node.func === 'label_replace' || node.func === 'label_join') {
        const out = of(node.args[0]);
        const dst = node.args[1];
        if (dst?.kind === 'string') out.add(dst.value);
        return out;
      }
      const vector = node.args.find((a) => !isScalar(a) && a.kind !== 'string');
      return vector === undefined ? new Set() : of(vector);
    }
    case 'binary': {
      if (isScalar(node.lhs)) return of(node.rhs);
      if (isScalar(node.rhs)) return of(node.lhs);
      if (node.op === 'or') return new Set([...of(node.lhs), ...of(node.rhs)]);
      const m = node.matching;
      if (m?.group === 'right') return new Set([...of(node.rhs), ...m.include]);
      const out = of(node.lhs);
      for (const l of m?.include ?? []) out.add(l);
      return out;
    }
  }
}
