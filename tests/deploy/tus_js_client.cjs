// Uploads a file to a running Ferry with tus-js-client (the library Uppy uses):
// the upload is aborted a third of the way through, then resumed from its URL as
// a client does after a network drop. Prints what happened as JSON.
// Usage: node tus_js_client.cjs BASE_URL TOKEN FILE NAME
"use strict";
const fs = require("fs");
const tus = require("tus-js-client");

const [base, token, file, name] = process.argv.slice(2);
const data = fs.readFileSync(file);
const options = {
  endpoint: `${base}/api/uploads/`,
  headers: { Authorization: `Bearer ${token}` },
  chunkSize: 4 * 1024 * 1024,
  metadata: { filename: name, filetype: "application/octet-stream" },
  // 423 while the server still finishes the aborted request: retry it.
  retryDelays: [0, 500, 1000, 2000, 5000, 10000, 30000],
};

(async () => {
  const first = new tus.Upload(data, options);
  await new Promise((resolve, reject) => {
    let aborted = false;
    first.options.onError = reject;
    first.options.onSuccess = () => reject(new Error("finished before it was cut off"));
    first.options.onProgress = (sent, total) => {
      if (!aborted && sent >= total / 3) {
        aborted = true;
        // The PATCH in flight is cut off, as by a network drop.
        setImmediate(() => first.abort().then(resolve, reject));
      }
    };
    first.start();
  });
  const uploadUrl = first.url;
  let resumedFrom = null;
  await new Promise((resolve, reject) => {
    const second = new tus.Upload(data, {
      ...options,
      uploadUrl,
      onChunkComplete(chunk, accepted) {
        if (resumedFrom === null) resumedFrom = accepted - chunk;
      },
      onSuccess: resolve,
      onError: reject,
    });
    second.start();
  });
  console.log(JSON.stringify({ url: uploadUrl, resumedFrom, size: data.length }));
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
