// Starts Swagger UI on the document named by #swagger-ui's data-openapi-url. A file, not an
// inline script: the page's Content-Security-Policy runs scripts of this origin only.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    tryItOutEnabled: true,
    displayOperationId: true, // what a GPT Action calls each operation
    displayRequestDuration: true,
    validatorUrl: null, // the badge would ask validator.swagger.io
  });
})();
