// Loads one of the lazily required bundles (operator commands, node agent): from the file beside
// dist/testcni.cjs when run by Node, or from the assets embedded in the single executable, which
// has no files beside it. Reached only off the CNI path (scripts/build.mjs wires it in).
import { isSea, getAsset } from 'node:sea';
import { createRequire } from 'node:module';
import { compileFunction } from 'node:vm';

/** CommonJS exports of `name`: the embedded asset in a single executable, else `sibling()`. */
export function loadBundle(name: string, sibling: () => unknown): unknown {
  if (!isSea()) return sibling();
  return evaluateCommonJs(getAsset(name, 'utf8'), `${process.execPath}#${name}`);
}

/**
 * Evaluates a self-contained CommonJS bundle. Its `require` resolves Node's built-in modules
 * (every other dependency is bundled in; the build checks that none is left external).
 */
export function evaluateCommonJs(code: string, filename: string): unknown {
  const module = { exports: {} as unknown };
  const fn = compileFunction(code, ['exports', 'require', 'module', '__filename', '__dirname'], { filename });
  fn.call(module.exports, module.exports, createRequire(process.execPath), module, filename, process.execPath.replace(/\/[^/]*$/, ''));
  return module.exports;
}
