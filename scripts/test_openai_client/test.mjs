// The official `openai` npm client against `longctx serve`: completions, chat,
// streaming with usage, and an error case. Usage: node test.mjs BASE_URL MODEL [API_KEY]
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [baseURL, model, apiKey = 'unused'] = process.argv.slice(2);
if (!baseURL || !model) {
  console.error('usage: node test.mjs BASE_URL MODEL [API_KEY]');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    console.error(`FAIL ${name}: ${e.stack ?? e}`);
    process.exitCode = 1;
  }
}

await check('models', async () => {
  const list = await client.models.list();
  assert.equal(list.data[0].id, model);
});

await check('completions', async () => {
  const r = await client.completions.create({ model, prompt: 'Hello, my name is', max_tokens: 6, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 6);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

await check('chat', async () => {
  const r = await client.chat.completions.create({
    model,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hi.' }],
    max_completion_tokens: 5,
    seed: 7,
    // vLLM-style extra field, passed through the client untouched.
    ignore_eos: true,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.usage.completion_tokens, 5);
});

await check('chat streaming with usage equals the whole response', async () => {
  const req = {
    model,
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    max_tokens: 12,
    temperature: 0.8,
    seed: 42,
    ignore_eos: true,
  };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) text += c.delta?.content ?? '';
  }
  assert.ok(chunks >= 2);
  assert.equal(text, whole.choices[0].message.content);
  assert.ok(usage, 'a final usage chunk');
  assert.equal(usage.completion_tokens, 12);
  assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
});

await check('completions streaming', async () => {
  const stream = await client.completions.create({
    model, prompt: 'Once upon a time', max_tokens: 8, stream: true, stream_options: { include_usage: true }, ignore_eos: true,
  });
  let n = 0;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    n += chunk.choices.length;
  }
  assert.equal(n, 8);
  assert.equal(usage.completion_tokens, 8);
});

await check('errors: unknown model is a 404, bad max_tokens a 400', async () => {
  await assert.rejects(client.completions.create({ model: 'no-such-model', prompt: 'x' }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, `expected NotFoundError, got ${e.constructor.name}`);
    assert.match(e.message, /no-such-model/);
    return true;
  });
  await assert.rejects(client.completions.create({ model, prompt: 'x', max_tokens: -3 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${e.constructor.name}`);
    assert.match(e.message, /max_tokens/);
    return true;
  });
});
