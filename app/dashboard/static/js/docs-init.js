// Swagger UI for /docs, from the package (FastAPI's default page loads it from a CDN and runs an inline
// script, which the Content-Security-Policy forbids). The key given to "Authorize" stays in memory only.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  validatorUrl: null, // its default is a badge fetched from validator.swagger.io: nothing leaves the machine
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
