// Swagger UI on this server's own OpenAPI document; "Authorize" with the Token scheme survives reloads.
window.ui = SwaggerUIBundle({
  url: "/api/schema/",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: true,
  // The scheme is an apiKey in the Authorization header: accept a bare token and add "Token ".
  requestInterceptor: (request) => {
    const value = request.headers && request.headers.Authorization;
    if (value && !/^token\s/i.test(value)) request.headers.Authorization = `Token ${value}`;
    return request;
  },
});
