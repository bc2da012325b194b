// Starts Redoc on the document named by #redoc's data-openapi-url. A file, not an inline
// script: the page's Content-Security-Policy runs scripts of this origin only.
"use strict";
(function () {
  var root = document.getElementById("redoc");
  var sans = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  Redoc.init(
    root.dataset.openapiUrl,
    {
      // The system's fonts: nothing is fetched for them.
      theme: {
        typography: {
          fontFamily: sans,
          headings: { fontFamily: sans },
          code: { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace' },
        },
      },
    },
    root,
  );
})();
