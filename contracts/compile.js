#!/usr/bin/env node
// Compiles contracts/*.sol with solcjs (pinned in package.json) and writes contracts_abi/:
// the project's own contracts as {abi, bytecode}, and the ABIs (no bytecode) of the Uniswap V2
// contracts the bot talks to, taken from the npm artifacts. `--check` compares instead of writing.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = path.resolve(__dirname, "..");
const outDir = path.join(root, "contracts_abi");
const check = process.argv.includes("--check");

const sources = {};
for (const file of fs.readdirSync(path.join(root, "contracts")).sort()) {
  if (file.endsWith(".sol")) {
    sources[file] = { content: fs.readFileSync(path.join(root, "contracts", file), "utf8") };
  }
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    viaIR: true, // the executor needs it (stack depth); it also optimises better
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}

const artifacts = {};
for (const file of Object.keys(output.contracts)) {
  for (const [name, c] of Object.entries(output.contracts[file])) {
    if (!c.evm.bytecode.object) continue; // interfaces: nothing to deploy or load
    artifacts[`${name}.json`] = {
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      compiler: solc.version(),
    };
  }
}
const uniswap = {
  "IUniswapV2Pair.json": "@uniswap/v2-core/build/IUniswapV2Pair.json",
  "IUniswapV2Factory.json": "@uniswap/v2-core/build/IUniswapV2Factory.json",
  "IUniswapV2Router02.json": "@uniswap/v2-periphery/build/IUniswapV2Router02.json",
  "IERC20.json": "@uniswap/v2-core/build/IERC20.json",
};
for (const [name, mod] of Object.entries(uniswap)) {
  artifacts[name] = { abi: require(mod).abi };
}

let stale = [];
for (const [name, artifact] of Object.entries(artifacts)) {
  const text = JSON.stringify(artifact, null, 1) + "\n";
  const target = path.join(outDir, name);
  if (check) {
    if (!fs.existsSync(target) || fs.readFileSync(target, "utf8") !== text) stale.push(name);
  } else {
    fs.writeFileSync(target, text);
  }
}
if (stale.length) {
  console.error(`contracts_abi/ is stale (${stale.join(", ")}): run \`make contracts\` and commit the result`);
  process.exit(1);
}
console.log(`${check ? "checked" : "wrote"} ${Object.keys(artifacts).length} artifacts in contracts_abi/`);
