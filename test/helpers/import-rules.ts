import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The dependency rules of docs/architecture.md ("Dependency rules"), checked on the source tree
 * from what each import really resolves to (the TypeScript compiler's parser and its NodeNext
 * resolver, with the repo's tsconfig):
 * 1. Gateway code (agent/, common/, firmware-bridge/, server/) never imports tools/. cli/ may reach
 *    tools/ only through a lazy import() (inside a function) of tools/cli/*.ts, a workstation command;
 *    a static import, a require or a top-level import() is a violation.
 * 2. agent/ never imports server/ or cli/; server/ never imports cli/.
 * 3. firmware-bridge/ imports only firmware-bridge/ and common/.
 * 4. common/ imports only common/.
 * 5. Nothing outside test/ imports test/.
 * 6. Every specifier outside test/ can be resolved statically (a string literal or a template without
 *    substitutions), so that rules 1-5 can be checked; the exceptions are listed in DYNAMIC_EXEMPT,
 *    each with its reason.
 *
 * Seen: `import … from`, `export … from`, side-effect `import 'x'`, `import x = require('x')`,
 * `typeof import('x')`, `import('x')`, `require('x')`, and `createRequire(…)('x')` or a name bound to
 * `createRequire(…)`, in .ts .mts .cts .js .mjs .cjs files. A package specifier is out of scope unless it
 * resolves into the project outside node_modules (a symlinked package, package.json "imports"): then
 * it is checked as the project file it reaches.
 */

export type RuleId = 1 | 2 | 3 | 4 | 5 | 6;

export type ImportForm = 'import' | 'export' | 'side-effect' | 'import-equals' | 'import-type' | 'import()' | 'require' | 'createRequire';

export interface ImportEdge {
  /** The importing file, relative to the root, with / separators. */
  from: string;
  line: number;
  form: ImportForm;
  /** The specifier as written; for a non-static one, the expression's source text. */
  specifier: string;
  /** The project file it reaches (relative to the root); undefined for a package or an unresolvable specifier. */
  to: string | undefined;
  /** False when the specifier cannot be known without running the code (a template with substitutions, a variable). */
  static: boolean;
  /** An import() inside a function: nothing is loaded until the function runs. */
  lazy: boolean;
}

export interface ImportViolation {
  file: string;
  line: number;
  /** What the import reaches: a project path, or the specifier's text when it cannot be resolved. */
  target: string;
  rule: RuleId;
  message: string;
}

/** A non-static specifier that is allowed, with why it cannot reach a project path it must not. */
export interface DynamicExemption {
  file: string;
  /** The argument's source text, as written. */
  expression: string;
  reason: string;
}

export const DYNAMIC_EXEMPT: readonly DynamicExemption[] = [
  {
    file: 'firmware-bridge/gpio/pigpio-loader.ts',
    expression: 'moduleName',
    reason: 'loads the optional pigpio package by its package name (a test names a package that is not installed); it never names a project path',
  },
];

const TOP_FOLDERS = ['agent', 'cli', 'common', 'firmware-bridge', 'server', 'tools', 'bin'];
const SOURCE = /\.(?:ts|mts|cts|js|mjs|cjs)$/;
const GATEWAY = ['agent/', 'common/', 'firmware-bridge/', 'server/'];
const WORKSTATION_COMMAND = /^tools\/cli\/[^/]+\.ts$/;

const RULES: Record<RuleId, { says: string; fix: string }> = {
  1: {
    says: 'gateway code never imports tools/, and cli/ reaches tools/ only through a lazy import() of tools/cli/*.ts',
    fix: 'move what the gateway needs out of tools/ (into agent/ or common/); from cli/, load a workstation command in tools/cli/ with import() inside the function that runs it',
  },
  2: {
    says: 'agent/ never imports server/ or cli/, and server/ never imports cli/',
    fix: 'have the CLI compose the parts and hand them in, or move what both use to common/',
  },
  3: {
    says: 'firmware-bridge/ imports only firmware-bridge/ and common/',
    fix: 'move what the bridge needs to common/, or have the agent hand it in through the interfaces of firmware-bridge/types.ts',
  },
  4: {
    says: 'common/ imports only common/',
    fix: 'move the piece it needs into common/, or have the caller pass it in',
  },
  5: {
    says: 'nothing outside test/ imports test/',
    fix: 'move the shared code out of test/ into the folder that needs it',
  },
  6: {
    says: 'a specifier outside test/ must be resolvable statically so the other rules can be checked',
    fix: 'write the specifier as a string literal (a map of literal import() calls for a choice), or add the file and expression to DYNAMIC_EXEMPT in test/helpers/import-rules.ts with the reason it cannot reach a forbidden folder',
  },
};

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The repo's compiler options, plus allowJs so .js/.mjs/.cjs targets resolve too. */
function resolutionOptions(): ts.CompilerOptions {
  const tsconfig = path.join(REPO_ROOT, 'tsconfig.json');
  const read = ts.readConfigFile(tsconfig, (file) => ts.sys.readFile(file));
  if (read.error) throw new Error(`${tsconfig}: ${ts.flattenDiagnosticMessageText(read.error.messageText, '\n')}`);
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, REPO_ROOT);
  return { ...parsed.options, allowJs: true, noEmit: true };
}

function sourceFiles(root: string, dir: string): string[] {
  const full = path.join(root, dir);
  if (!fs.existsSync(full)) return [];
  return fs.readdirSync(full, { withFileTypes: true }).flatMap((entry) => {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'build' || entry.name.startsWith('.') ? [] : sourceFiles(root, rel);
    return entry.isFile() && SOURCE.test(entry.name) ? [rel] : [];
  });
}

function scriptKind(file: string): ts.ScriptKind {
  return /\.[mc]?js$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
}

interface RawImport {
  node: ts.Node;
  form: ImportForm;
  argument: ts.Expression | ts.TypeNode;
  /** How Node resolves it: CommonJS for require, ESM for import(), the file's own format for static imports. */
  mode: 'require' | 'import' | 'file';
  lazy: boolean;
}

function staticText(argument: ts.Node): string | undefined {
  if (ts.isStringLiteral(argument) || ts.isNoSubstitutionTemplateLiteral(argument)) return argument.text;
  if (ts.isLiteralTypeNode(argument)) return staticText(argument.literal);
  return undefined;
}

function insideFunction(node: ts.Node): boolean {
  for (let at = node.parent; at; at = at.parent) if (ts.isFunctionLike(at)) return true;
  return false;
}

/** Every import form in one file, in source order. */
function rawImports(source: ts.SourceFile): RawImport[] {
  // Names that stand for createRequire (import aliases included) and for the functions it returned.
  const createRequireNames = new Set(['createRequire']);
  const requireNames = new Set(['require']);
  const isCreateRequireCall = (node: ts.Node): boolean =>
    ts.isCallExpression(node) &&
    ((ts.isIdentifier(node.expression) && createRequireNames.has(node.expression.text)) ||
      (ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === 'createRequire'));
  const collectNames = (node: ts.Node): void => {
    if (ts.isImportSpecifier(node) && (node.propertyName ?? node.name).text === 'createRequire') createRequireNames.add(node.name.text);
    node.forEachChild(collectNames);
  };
  const collectRequires = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer && isCreateRequireCall(node.initializer)) requireNames.add(node.name.text);
    if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.EqualsToken && ts.isIdentifier(node.left) && isCreateRequireCall(node.right)) requireNames.add(node.left.text);
    node.forEachChild(collectRequires);
  };
  collectNames(source);
  collectRequires(source);

  const found: RawImport[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      found.push({ node, form: node.importClause ? 'import' : 'side-effect', argument: node.moduleSpecifier, mode: 'file', lazy: false });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      found.push({ node, form: 'export', argument: node.moduleSpecifier, mode: 'file', lazy: false });
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      found.push({ node, form: 'import-equals', argument: node.moduleReference.expression, mode: 'require', lazy: false });
    } else if (ts.isImportTypeNode(node)) {
      found.push({ node, form: 'import-type', argument: node.argument, mode: 'import', lazy: false });
    } else if (ts.isCallExpression(node) && node.arguments[0]) {
      const callee = node.expression;
      const argument = node.arguments[0];
      if (callee.kind === ts.SyntaxKind.ImportKeyword) found.push({ node, form: 'import()', argument, mode: 'import', lazy: insideFunction(node) });
      else if (ts.isIdentifier(callee) && requireNames.has(callee.text)) found.push({ node, form: callee.text === 'require' ? 'require' : 'createRequire', argument, mode: 'require', lazy: false });
      else if (isCreateRequireCall(callee)) found.push({ node, form: 'createRequire', argument, mode: 'require', lazy: false });
    }
    node.forEachChild(visit);
  };
  visit(source);
  return found;
}

/** Every import in the tree outside test/, with the project file each one reaches. */
export function importEdges(rootDir: string): ImportEdge[] {
  const root = fs.realpathSync(rootDir);
  const options = resolutionOptions();
  const cache = ts.createModuleResolutionCache(root, (name) => name, options);
  const inProject = (file: string): string | undefined => {
    const rel = path.relative(root, file);
    if (rel.startsWith('..') || path.isAbsolute(rel) || rel.split(path.sep).includes('node_modules')) return undefined;
    return rel.split(path.sep).join('/');
  };
  const edges: ImportEdge[] = [];
  for (const from of TOP_FOLDERS.flatMap((top) => sourceFiles(root, top))) {
    const file = path.join(root, from);
    const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, scriptKind(file));
    const fileFormat = ts.getImpliedNodeFormatForFile(file, cache.getPackageJsonInfoCache(), ts.sys, options);
    for (const raw of rawImports(source)) {
      const line = source.getLineAndCharacterOfPosition(raw.node.getStart(source)).line + 1;
      const text = staticText(raw.argument);
      if (text === undefined) {
        edges.push({ from, line, form: raw.form, specifier: raw.argument.getText(source), to: undefined, static: false, lazy: raw.lazy });
        continue;
      }
      const mode = raw.mode === 'require' ? ts.ModuleKind.CommonJS : raw.mode === 'import' ? ts.ModuleKind.ESNext : fileFormat;
      const specifier = text.startsWith('file:') ? fileURLToPath(text) : text;
      const resolved = ts.resolveModuleName(specifier, file, options, ts.sys, cache, undefined, mode).resolvedModule?.resolvedFileName;
      // A path that does not resolve (a missing file, an extensionless ESM import) is still checked where it points.
      const pathLike = specifier.startsWith('.') || path.isAbsolute(specifier);
      const target = resolved ?? (pathLike ? path.resolve(path.dirname(file), specifier) : undefined);
      edges.push({ from, line, form: raw.form, specifier: text, to: target === undefined ? undefined : inProject(target), static: true, lazy: raw.lazy });
    }
  }
  return edges;
}

function top(file: string): string {
  return `${file.split('/')[0]}/`;
}

/** Which rule an edge to a project file breaks, if any. */
function brokenRule(edge: ImportEdge & { to: string }): RuleId | undefined {
  const from = top(edge.from);
  const to = top(edge.to);
  if (to === 'tools/') {
    if (GATEWAY.includes(from)) return 1;
    if (from === 'cli/' && !(edge.form === 'import()' && edge.lazy && WORKSTATION_COMMAND.test(edge.to))) return 1;
  }
  if (from === 'agent/' && (to === 'server/' || to === 'cli/')) return 2;
  if (from === 'server/' && to === 'cli/') return 2;
  if (from === 'firmware-bridge/' && to !== 'firmware-bridge/' && to !== 'common/') return 3;
  if (from === 'common/' && to !== 'common/') return 4;
  if (to === 'test/') return 5;
  return undefined;
}

function violation(edge: ImportEdge, target: string, rule: RuleId): ImportViolation {
  const { says, fix } = RULES[rule];
  const how = `${edge.form}${edge.form === 'import()' && !edge.lazy ? ' (top level, not lazy)' : ''} of ${JSON.stringify(edge.specifier)}`;
  return {
    file: edge.from,
    line: edge.line,
    target,
    rule,
    message: `${edge.from}:${edge.line}: ${how} reaches ${target}, against rule ${rule} (${says}). Fix: ${fix}.`,
  };
}

/**
 * The breaches of the rules above in the tree at `root`, each naming the file, the target, the rule
 * and the fix. An exemption that matches nothing is reported too, so the list cannot go stale.
 */
export function importViolations(root: string, exempt: readonly DynamicExemption[] = DYNAMIC_EXEMPT): ImportViolation[] {
  const problems: ImportViolation[] = [];
  const used = new Set<DynamicExemption>();
  for (const edge of importEdges(root)) {
    if (!edge.static) {
      const exemption = exempt.find((e) => e.file === edge.from && e.expression === edge.specifier);
      if (exemption) used.add(exemption);
      else problems.push(violation(edge, `an unresolvable ${edge.specifier}`, 6));
      continue;
    }
    if (edge.to === undefined) continue;
    const rule = brokenRule({ ...edge, to: edge.to });
    if (rule !== undefined) problems.push(violation(edge, edge.to, rule));
  }
  for (const exemption of exempt.filter((e) => !used.has(e))) {
    problems.push({
      file: exemption.file,
      line: 0,
      target: exemption.expression,
      rule: 6,
      message: `${exemption.file}: DYNAMIC_EXEMPT allows a specifier ${exemption.expression} that is not there any more. Fix: remove the entry from test/helpers/import-rules.ts.`,
    });
  }
  return problems;
}
