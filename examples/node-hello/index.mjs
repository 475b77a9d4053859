// A Node.js Lambda function with no dependencies: upload it as it is.
export const handler = async (event) => {
  const name = event?.name ?? "world";
  return { statusCode: 200, body: JSON.stringify({ message: `hello, ${name}`, node: process.version }) };
};
