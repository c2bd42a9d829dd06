// The official @openrouter/sdk against an OpenRouter-compatible base URL: chat (whole and
// streamed), the model list and the key. The SDK validates every answer against its schemas, so a
// missing or mistyped field fails here. Usage: node check.mjs BASE_URL API_KEY
// Prints one line per call; crates/switchboard-server/tests/api/sdk.rs reads them.
import { OpenRouter } from '@openrouter/sdk';

const [base, key] = process.argv.slice(2);
const client = new OpenRouter({ apiKey: key, serverURL: base, retryConfig: { strategy: 'none' } });
const messages = [{ role: 'user', content: 'hello from the sdk' }];

const whole = await client.chat.send({ chatRequest: { model: 'mock/echo', messages, stream: false } });
console.log('NONSTREAM:' + whole.choices[0].message.content);
console.log('USAGE:' + (whole.usage.totalTokens > 0));

const stream = await client.chat.send({ chatRequest: { model: 'mock/echo', messages, stream: true } });
let text = '';
for await (const chunk of stream) text += chunk.choices?.[0]?.delta?.content ?? '';
console.log('STREAM:' + text);

const models = (await client.models.list()).result;
console.log('MODELS:' + (models.data.length > 0 && models.data.some((m) => m.id === 'mock/echo')));
console.log('TOTAL:' + (models.totalCount === models.data.length));

const current = await client.apiKeys.getCurrentKeyMetadata();
console.log('KEY:' + (typeof current.data.limitRemaining === 'number'));
