using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Sampling;
using ClockLM.Server;
using ClockLM.Tests.Fuzzing;

namespace ClockLM.Tests.Server;

/// <summary>
/// Malformed and abusive requests (types, sizes, encodings, nesting, headers, methods, paths, slow bodies), each
/// answered with its documented status (docs/server.md) and an OpenAI-shaped error, while a well-formed streaming
/// client beside them keeps receiving exactly the tokens it gets alone.
/// </summary>
public sealed class HostileRequestSuiteTests
{
    /// <summary>One hostile request and the status it must get.</summary>
    public sealed record Case(string Class, string Name, Func<HttpRequestMessage> Make, HttpStatusCode Status);

    /// <summary>Malformed HTTP, sent as raw bytes, that Kestrel answers itself before the server sees the request:
    /// the status alone, with no JSON body (docs/server.md).</summary>
    public static List<(string Name, Func<Uri, string> Request, int Status)> TransportCases() =>
    [
        ("Host with a path", a => $"GET /health HTTP/1.1\r\nHost: evil.example/x\r\n\r\n", 400),
        ("two Host headers", a => $"GET /health HTTP/1.1\r\nHost: {a.Authority}\r\nHost: {a.Authority}\r\n\r\n", 400),
        ("no Host in HTTP/1.1", a => "GET /health HTTP/1.1\r\n\r\n", 400),
        ("200 headers", a => $"GET /health HTTP/1.1\r\nHost: {a.Authority}\r\n" + string.Concat(Enumerable.Range(0, 200).Select(i => $"X-J{i}: j\r\n")) + "\r\n", 431),
        ("a 40 kB header", a => $"GET /health HTTP/1.1\r\nHost: {a.Authority}\r\nX-Big: {new string('b', 40_000)}\r\n\r\n", 431),
        ("NUL in the path", a => $"GET /health%00 HTTP/1.1\r\nHost: {a.Authority}\r\n\r\n", 400),
        ("a request line of garbage", a => "\u0001\u0002 garbage\r\n\r\n", 400),
        ("HTTP/9.9", a => $"GET /health HTTP/9.9\r\nHost: {a.Authority}\r\n\r\n", 505),
        ("Content-Length and chunked", a => $"POST /tokenize HTTP/1.1\r\nHost: {a.Authority}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("negative Content-Length", a => $"POST /tokenize HTTP/1.1\r\nHost: {a.Authority}\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n", 400),
    ];

    /// <summary>Sends raw bytes and reads the status line of the answer.</summary>
    private static async Task<int> RawAsync(Uri address, string request)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request));
        var buffer = new byte[256];
        int n = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        string head = Encoding.ASCII.GetString(buffer, 0, n);
        return int.Parse(head.Split(' ')[1]);
    }

    private static HttpRequestMessage Post(string path, string body, string type = "application/json") =>
        Post(path, Encoding.UTF8.GetBytes(body), type);

    private static HttpRequestMessage Post(string path, byte[] body, string? type = "application/json")
    {
        var content = new ByteArrayContent(body);
        if (type is not null) content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
        return new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
    }

    private const string Chat = "/v1/chat/completions", Text = "/v1/completions", Embed = "/v1/embeddings";
    private const string User = """[{"role":"user","content":"hi"}]""";

    /// <summary>The cases, by class. Statuses: 400 bad field or JSON, 403 foreign Host, 404 unknown path or model,
    /// 405 wrong method, 408 body too slow, 413 body too large, 415 not JSON.</summary>
    public static List<Case> Cases()
    {
        var cases = new List<Case>();
        void Add(string cls, string name, Func<HttpRequestMessage> make, HttpStatusCode status) => cases.Add(new(cls, name, make, status));
        const HttpStatusCode Bad = HttpStatusCode.BadRequest;

        // Types: each field given a value of the wrong type or out of range.
        (string Path, string Field, string Value, string Others)[] types =
        [
            (Chat, "messages", "\"hi\"", ""), (Chat, "messages", "42", ""), (Chat, "messages", "{}", ""), (Chat, "messages", "[]", ""),
            (Chat, "messages", "[1]", ""), (Chat, "messages", "[null]", ""), (Chat, "messages", "[{}]", ""),
            (Chat, "messages", """[{"role":"robot","content":"x"}]""", ""), (Chat, "messages", """[{"role":1,"content":"x"}]""", ""),
            (Chat, "messages", """[{"role":"user","content":5}]""", ""), (Chat, "messages", """[{"role":"user","content":[5]}]""", ""),
            (Chat, "messages", """[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]""", ""),
            (Chat, "messages", """[{"role":"user","content":[{"type":"text","text":7}]}]""", ""),
            (Chat, "messages", """[{"role":"user","content":"x","name":3}]""", ""),
            (Chat, "max_tokens", "\"10\"", $",\"messages\":{User}"), (Chat, "max_tokens", "1.5", $",\"messages\":{User}"),
            (Chat, "max_tokens", "0", $",\"messages\":{User}"), (Chat, "max_tokens", "-1", $",\"messages\":{User}"),
            (Chat, "max_tokens", "1e400", $",\"messages\":{User}"),
            (Chat, "max_completion_tokens", "true", $",\"messages\":{User}"),
            (Chat, "temperature", "\"hot\"", $",\"messages\":{User}"), (Chat, "temperature", "-1", $",\"messages\":{User}"),
            (Chat, "temperature", "3", $",\"messages\":{User}"), (Chat, "temperature", "1e400", $",\"messages\":{User}"),
            (Chat, "top_p", "0", $",\"messages\":{User}"), (Chat, "top_p", "1.5", $",\"messages\":{User}"),
            (Chat, "top_k", "-3", $",\"messages\":{User}"), (Chat, "top_k", "2.5", $",\"messages\":{User}"),
            (Chat, "min_p", "2", $",\"messages\":{User}"), (Chat, "repeat_penalty", "0", $",\"messages\":{User}"),
            (Chat, "seed", "\"x\"", $",\"messages\":{User}"), (Chat, "seed", "1e30", $",\"messages\":{User}"),
            (Chat, "stop", "5", $",\"messages\":{User}"), (Chat, "stop", "[1,2]", $",\"messages\":{User}"),
            (Chat, "stop", "[" + string.Join(",", Enumerable.Repeat("\"x\"", 17)) + "]", $",\"messages\":{User}"),
            (Chat, "stream", "\"yes\"", $",\"messages\":{User}"), (Chat, "stream_options", "true", $",\"messages\":{User}"),
            (Chat, "logprobs", "5", $",\"messages\":{User}"), (Chat, "top_logprobs", "21", $",\"messages\":{User}"),
            (Chat, "top_logprobs", "3", $",\"messages\":{User}"), (Chat, "n", "2", $",\"messages\":{User}"),
            (Chat, "n", "\"1\"", $",\"messages\":{User}"), (Chat, "model", "7", $",\"messages\":{User}"),
            (Chat, "clocklm", "[]", $",\"messages\":{User}"), (Chat, "clocklm", """{"top_k":0}""", $",\"messages\":{User}"),
            (Text, "prompt", "5", ""), (Text, "prompt", "{}", ""), (Text, "prompt", "[true]", ""), (Text, "prompt", "[[1,\"a\"]]", ""),
            (Text, "prompt", "[-1]", ""), (Text, "prompt", "[99999]", ""), (Text, "prompt", "[1.5]", ""), (Text, "prompt", "[\"a\",\"b\"]", ""),
            (Text, "prompt", "[[]]", ""),
            (Text, "logprobs", "6", ",\"prompt\":\"hi\""), (Text, "logprobs", "true", ",\"prompt\":\"hi\""),
            (Text, "max_tokens", "null,\"max_tokens\":\"x\"", ",\"prompt\":\"hi\""),
            (Embed, "input", "5", ""), (Embed, "input", "[]", ""), (Embed, "input", "[[]]", ""), (Embed, "input", "[{}]", ""),
            (Embed, "input", "\"\"", ""), (Embed, "input", "[-5]", ""), (Embed, "encoding_format", "\"hex\"", ",\"input\":\"hi\""),
            (Embed, "encoding_format", "1", ",\"input\":\"hi\""), (Embed, "dimensions", "8", ",\"input\":\"hi\""),
            (Embed, "input", "[" + string.Join(",", Enumerable.Repeat("\"a\"", 257)) + "]", ""),
            ("/tokenize", "content", "5", ""), ("/tokenize", "content", "[]", ""), ("/tokenize", "add_special", "\"yes\"", ",\"content\":\"a\""),
            ("/tokenize", "with_pieces", "1", ",\"content\":\"a\""), ("/tokenize", "parse_special", "{}", ",\"content\":\"a\""),
            ("/detokenize", "tokens", "\"1 2\"", ""), ("/detokenize", "tokens", "[-1]", ""), ("/detokenize", "tokens", "[512]", ""),
            ("/detokenize", "tokens", "[1.5]", ""), ("/detokenize", "tokens", "[\"1\"]", ""), ("/detokenize", "tokens", "[[1]]", ""),
            ("/detokenize", "tokens", "[2147483648]", ""),
        ];
        foreach (var (path, field, value, others) in types)
            Add("types", $"{path} {field}={value}", () => Post(path, $"{{\"{field}\":{value}{others}}}"), Bad);
        Add("types", "missing messages", () => Post(Chat, "{}"), Bad);
        Add("types", "missing prompt", () => Post(Text, "{\"max_tokens\":1}"), Bad);
        Add("types", "missing input", () => Post(Embed, "{}"), Bad);
        Add("types", "missing content", () => Post("/tokenize", "{}"), Bad);
        Add("types", "missing tokens", () => Post("/detokenize", "{}"), Bad);
        Add("types", "unknown model", () => Post(Text, "{\"model\":\"gpt-4\",\"prompt\":\"hi\"}"), HttpStatusCode.NotFound);

        // Sizes: bodies over the limit, prompts over the context, counts over their bounds.
        Add("sizes", "body of 70 kB", () => Post("/tokenize", $"{{\"content\":\"{new string('a', 70_000)}\"}}"), HttpStatusCode.RequestEntityTooLarge);
        Add("sizes", "body of 1 MB", () => Post(Text, $"{{\"prompt\":\"{new string('b', 1 << 20)}\"}}"), HttpStatusCode.RequestEntityTooLarge);
        Add("sizes", "prompt over the context", () => Post(Text, $"{{\"prompt\":\"{string.Concat(Enumerable.Repeat("Once upon a time ", 300))}\"}}"), Bad);
        Add("sizes", "prompt ids over the context", () => Post(Text, $"{{\"prompt\":[{string.Join(",", Enumerable.Repeat(100, 600))}]}}"), Bad);
        // As llama.cpp's n_predict: a cap, so a generation that reaches the context first ends there with "length".
        Add("sizes", "max_tokens over the room left", () => Post(Text, "{\"prompt\":\"hi\",\"max_tokens\":511}"), HttpStatusCode.OK);
        Add("sizes", "embedding over the context", () => Post(Embed, $"{{\"input\":[{string.Join(",", Enumerable.Repeat(100, 600))}]}}"), Bad);
        Add("sizes", "1000 messages over the context", () => Post(Chat, "{\"messages\":[" + string.Join(",", Enumerable.Repeat("""{"role":"user","content":"hi there"}""", 1000)) + "]}"), Bad);
        Add("sizes", "long stop list", () => Post(Text, "{\"prompt\":\"hi\",\"stop\":[" + string.Join(",", Enumerable.Repeat("\"s\"", 1000)) + "]}"), Bad);
        Add("sizes", "huge number", () => Post(Text, "{\"prompt\":\"hi\",\"max_tokens\":" + new string('9', 5000) + "}"), Bad);
        Add("sizes", "huge exponent", () => Post(Text, "{\"prompt\":\"hi\",\"temperature\":1e99999}"), Bad);
        Add("sizes", "5000 token ids out of range", () => Post("/detokenize", "{\"tokens\":[" + string.Join(",", Enumerable.Repeat(100000, 5000)) + "]}"), Bad);
        Add("sizes", "empty messages list", () => Post(Chat, "{\"messages\":[]}"), Bad);

        // Encodings: text that is not text, bodies that are not UTF-8, media types that are not JSON.
        foreach (string bad in new[] { "\\ud800", "\\udfff", "a\\ud83d", "\\udc00\\ud800", "\\ud83d\\u0041" })
        {
            Add("encodings", $"lone surrogate {bad} in content", () => Post("/tokenize", $"{{\"content\":\"{bad}\"}}"), Bad);
            Add("encodings", $"lone surrogate {bad} in a message", () => Post(Chat, $"{{\"messages\":[{{\"role\":\"user\",\"content\":\"{bad}\"}}]}}"), Bad);
            Add("encodings", $"lone surrogate {bad} in a prompt", () => Post(Text, $"{{\"prompt\":\"{bad}\"}}"), Bad);
        }
        foreach (byte[] raw in new byte[][] { [0xFF], [0xFE, 0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xC3], [0x80] })
        {
            string hex = Convert.ToHexString(raw);
            Add("encodings", $"bytes {hex} in a string", () => Post("/tokenize", [.. "{\"content\":\"a"u8, .. raw, .. "\"}"u8]), Bad);
            Add("encodings", $"bytes {hex} in a key", () => Post(Text, [.. "{\""u8, .. raw, .. "\":1,\"prompt\":\"hi\",\"max_tokens\":1}"u8]), Bad);
        }
        Add("encodings", "UTF-16 body", () => Post("/tokenize", Encoding.Unicode.GetBytes("{\"content\":\"a\"}")), Bad);
        Add("encodings", "UTF-32 body", () => Post("/tokenize", Encoding.UTF32.GetBytes("{\"content\":\"a\"}")), Bad);
        Add("encodings", "charset utf-16", () => Post("/tokenize", "{\"content\":\"a\"}", "application/json; charset=utf-16"), HttpStatusCode.UnsupportedMediaType);
        Add("encodings", "text/plain", () => Post(Text, "{\"prompt\":\"hi\"}", "text/plain"), HttpStatusCode.UnsupportedMediaType);
        Add("encodings", "form", () => Post(Text, "prompt=hi", "application/x-www-form-urlencoded"), HttpStatusCode.UnsupportedMediaType);
        Add("encodings", "multipart", () => Post(Text, "--x\r\n\r\nhi\r\n--x--", "multipart/form-data; boundary=x"), HttpStatusCode.UnsupportedMediaType);
        Add("encodings", "xml", () => Post(Text, "<prompt>hi</prompt>", "application/xml"), HttpStatusCode.UnsupportedMediaType);
        Add("encodings", "no content type", () => Post(Text, Encoding.UTF8.GetBytes("{\"prompt\":\"hi\"}"), null), HttpStatusCode.UnsupportedMediaType);
        Add("encodings", "gzip claimed, plain sent", () =>
        {
            var request = Post("/tokenize", "{\"content\":\"a\"}");
            request.Content!.Headers.ContentEncoding.Add("gzip");
            return request;
        }, HttpStatusCode.OK); // Kestrel does not decompress; the body is read as the JSON it is

        // JSON syntax and nesting.
        foreach (string body in new[] { "", " ", "null", "[]", "123", "\"text\"", "true", "{", "}", "{\"content\":", "{\"content\":\"a\",}",
                     "{'content':'a'}", "{content:\"a\"}", "{\"content\":\"a\"} trailing", "{\"content\":\"a\"}{}", "{\"content\":NaN}",
                     "{\"content\":\"a\" /* c */}", "{\"content\":\"a\\q\"}", "{\"content\":\"\t\"}", "{\"content\":01}", "\u0000", "{\"a\":1 \"b\":2}" })
            Add("json", $"body {JsonSerializer.Serialize(body)}", () => Post("/tokenize", body), Bad);
        foreach (int depth in new[] { 65, 100, 1000, 100_00 })
        {
            Add("nesting", $"arrays {depth} deep", () => Post(Text, "{\"prompt\":" + new string('[', depth) + new string(']', depth) + "}"), Bad);
            Add("nesting", $"objects {depth} deep", () => Post(Chat, "{\"messages\":" + string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth) + "}"), Bad);
        }
        Add("nesting", "content parts 60 deep", () => Post(Chat, "{\"messages\":[{\"role\":\"user\",\"content\":[" + new string('[', 60) + new string(']', 60) + "]}]}"), Bad);
        Add("nesting", "clocklm 70 deep", () => Post(Text, "{\"prompt\":\"hi\",\"clocklm\":" + string.Concat(Enumerable.Repeat("{\"x\":", 70)) + "1" + new string('}', 70) + "}"), Bad);

        // Headers.
        foreach (string host in new[] { "evil.example", "evil.example:80", "localhost.evil.example", "127.0.0.2", "[::2]", "0.0.0.0" })
            Add("headers", $"Host {host}", () =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
                request.Headers.Host = host;
                return request;
            }, HttpStatusCode.Forbidden);
        Add("headers", "Origin of another site, no CORS", () => { var r = Post("/tokenize", "{\"content\":\"a\"}"); r.Headers.Add("Origin", "http://evil.example"); return r; }, HttpStatusCode.OK);
        Add("headers", "Authorization on a key-less server", () => { var r = Post("/tokenize", "{\"content\":\"a\"}"); r.Headers.Add("Authorization", "Bearer nothing"); return r; }, HttpStatusCode.OK);
        Add("headers", "90 extra headers", () =>
        {
            var r = Post("/tokenize", "{\"content\":\"a\"}");
            for (int i = 0; i < 90; i++) r.Headers.Add($"X-Junk-{i}", new string('j', 20));
            return r;
        }, HttpStatusCode.OK);
        Add("headers", "Content-Length too large for the limit", () => Post("/tokenize", new byte[70_000]), HttpStatusCode.RequestEntityTooLarge);
        Add("headers", "Expect 100-continue", () => { var r = Post("/tokenize", "{\"content\":\"a\"}"); r.Headers.ExpectContinue = true; return r; }, HttpStatusCode.OK);
        Add("headers", "Transfer-Encoding chunked", () => { var r = Post("/tokenize", "{\"content\":\"a\"}"); r.Headers.TransferEncodingChunked = true; return r; }, HttpStatusCode.OK);
        Add("headers", "Accept text/html", () => { var r = Post("/tokenize", "{\"content\":\"a\"}"); r.Headers.Accept.ParseAdd("text/html"); return r; }, HttpStatusCode.OK);

        // Methods.
        foreach (string path in new[] { Chat, Text, Embed, "/tokenize", "/detokenize" })
            foreach (var method in new[] { HttpMethod.Get, HttpMethod.Put, HttpMethod.Delete, HttpMethod.Patch, HttpMethod.Options, new HttpMethod("TRACE") })
                Add("methods", $"{method} {path}", () => new HttpRequestMessage(method, path), HttpStatusCode.MethodNotAllowed);
        foreach (string path in new[] { "/health", "/v1/models", "/metrics", "/v1/models/stories260K" })
            foreach (var method in new[] { HttpMethod.Post, HttpMethod.Put, HttpMethod.Delete })
                Add("methods", $"{method} {path}", () => method == HttpMethod.Post ? new HttpRequestMessage(method, path) { Content = new StringContent("{}", Encoding.UTF8, "application/json") } : new HttpRequestMessage(method, path), HttpStatusCode.MethodNotAllowed);
        Add("methods", "made-up method", () => new HttpRequestMessage(new HttpMethod("BREW"), Chat), HttpStatusCode.MethodNotAllowed);

        // Paths.
        // GET / answers 200, as Ollama's server does (clients check it is up that way).
        Add("paths", "GET /", () => new HttpRequestMessage(HttpMethod.Get, "/"), HttpStatusCode.OK);
        foreach (string path in new[] { "/v1", "/v2/chat/completions", "/v1/chat", "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/v1/models/gpt-4",
                     "/v1/models/a/b", "/" + new string('x', 4000), "/tokenize;x", "/v1/engines" })
            Add("paths", $"GET {path[..Math.Min(path.Length, 40)]}", () => new HttpRequestMessage(HttpMethod.Get, path), HttpStatusCode.NotFound);
        Add("types", "empty embedding text", () => Post(Embed, "{\"input\":\"\"}"), Bad);
        Add("types", "empty embedding text in a list", () => Post(Embed, "{\"input\":[\"a\",\"\"]}"), Bad);
        return cases;
    }

    /// <summary>A stream that must not be disturbed: 150 greedy tokens, the same text as the engine alone gives.</summary>
    private static async Task<string> StreamAsync(HttpClient http, int[] prompt)
    {
        string body = $"{{\"prompt\":[{string.Join(",", prompt)}],\"max_tokens\":150,\"temperature\":0,\"stream\":true,\"clocklm\":{{\"ignore_eos\":true}}}}";
        using var request = Post(Text, body);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var text = new StringBuilder();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]") continue;
            var chunk = JsonDocument.Parse(line["data: ".Length..]).RootElement;
            foreach (var choice in chunk.GetProperty("choices").EnumerateArray()) text.Append(choice.GetProperty("text").GetString());
        }
        return text.ToString();
    }

    /// <summary>Sends a body slower than the server's minimum rate: it is cut off with 408 after the grace period.</summary>
    private static async Task<(int Status, string Body)> SlowBodyAsync(Uri address, string path)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        var stream = tcp.GetStream();
        string head = $"POST {path} HTTP/1.1\r\nHost: {address.Host}:{address.Port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"content\":\"";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        var response = new MemoryStream();
        var buffer = new byte[4096];
        var reading = stream.ReadAsync(buffer).AsTask();
        for (int i = 0; i < 20 && !reading.IsCompleted; i++)
        {
            try { await stream.WriteAsync("a"u8.ToArray()); } catch (IOException) { break; }
            await Task.WhenAny(reading, Task.Delay(500));
        }
        int n = await reading.WaitAsync(TimeSpan.FromSeconds(20));
        response.Write(buffer, 0, n);
        while (tcp.Available > 0 && (n = await stream.ReadAsync(buffer)) > 0) response.Write(buffer, 0, n);
        string text = Encoding.UTF8.GetString(response.ToArray());
        int status = int.Parse(text.Split(' ')[1]);
        // The body comes chunked: the JSON lies between its first '{' and last '}'.
        int start = text.IndexOf('{'), end = text.LastIndexOf('}');
        return (status, start < 0 ? "" : text[start..(end + 1)]);
    }

    [Fact]
    public async Task HostileRequestsGetTheirDocumentedAnswerWhileAStreamGoesOn()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 4 },
            new ServerOptions { MaxRequestBodyBytes = 64 << 10, BodyGracePeriod = TimeSpan.FromSeconds(2) });
        int[] prompt = host.Model.Tokenizer.Encode("Once upon a time").ToArray();
        string expected = ServerHost.RunAlone(host.Model, prompt, 150, new SamplerOptions { Temperature = 0 });

        using var streamer = new HttpClient { BaseAddress = host.Address, Timeout = TimeSpan.FromSeconds(120) };
        // The stream on a quiet server: what the engine gives alone, then (past an end of text it ignores) more tokens.
        string quiet = await StreamAsync(streamer, prompt);
        Assert.StartsWith(expected, quiet);
        using var stop = new CancellationTokenSource();
        var streams = Task.Run(async () =>
        {
            var texts = new List<string>();
            while (!stop.IsCancellationRequested) texts.Add(await StreamAsync(streamer, prompt));
            return texts;
        });

        var cases = Cases();
        Assert.True(cases.Count >= 150, $"{cases.Count} cases");
        var failures = new List<string>();
        var tally = new SortedDictionary<string, (int Tried, int Clean)>();
        foreach (var c in cases)
        {
            bool clean;
            string detail;
            try
            {
                using var request = c.Make();
                // A fresh connection per case: a pooled one the server closed after an earlier error is not an answer.
                request.Headers.ConnectionClose = true;
                using var response = await host.Http.SendAsync(request);
                string body = await response.Content.ReadAsStringAsync();
                detail = $"{(int)response.StatusCode} {body[..Math.Min(body.Length, 200)]}";
                clean = response.StatusCode == c.Status && (c.Status == HttpStatusCode.OK || IsOpenAiError(body));
            }
            catch (HttpRequestException e) when (c.Status == HttpStatusCode.RequestEntityTooLarge)
            {
                // Kestrel may close the connection after a 413 before the client has sent the whole body.
                (clean, detail) = (true, $"connection closed after 413: {e.Message}");
            }
            catch (HttpRequestException e)
            {
                (clean, detail) = (false, $"no answer: {e.Message} {e.InnerException?.Message}");
            }
            var (tried, ok) = tally.GetValueOrDefault(c.Class);
            tally[c.Class] = (tried + 1, ok + (clean ? 1 : 0));
            if (!clean) failures.Add($"[{c.Class}] {c.Name}: expected {(int)c.Status}, got {detail}");
        }

        foreach (string path in new[] { "/tokenize", Text })
        {
            var (status, body) = await SlowBodyAsync(host.Address, path);
            bool clean = status == 408 && IsOpenAiError(body);
            var (tried, ok) = tally.GetValueOrDefault("slow bodies");
            tally["slow bodies"] = (tried + 1, ok + (clean ? 1 : 0));
            if (!clean) failures.Add($"[slow bodies] {path}: expected 408, got {status} {body}");
        }

        foreach (var (name, request, status) in TransportCases())
        {
            int answered = await RawAsync(host.Address, request(host.Address));
            var (tried, ok) = tally.GetValueOrDefault("malformed HTTP");
            tally["malformed HTTP"] = (tried + 1, ok + (answered == status ? 1 : 0));
            if (answered != status) failures.Add($"[malformed HTTP] {name}: expected {status}, got {answered}");
        }

        stop.Cancel();
        var texts = await streams;
        Assert.NotEmpty(texts);
        foreach (string text in texts) Assert.Equal(quiet, text); // nothing lost, nothing mixed in
        Console.WriteLine(string.Join("\n", tally.Select(t => $"hostile {t.Key}: {t.Value.Tried} tried, {t.Value.Clean} answered as documented")));
        Console.WriteLine($"hostile: {texts.Count} streams of 150 tokens received intact beside them");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        using var health = await host.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    private static bool IsOpenAiError(string body)
    {
        try
        {
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
            return error.GetProperty("message").ValueKind == JsonValueKind.String && error.GetProperty("type").ValueKind == JsonValueKind.String
                && error.TryGetProperty("param", out _) && error.TryGetProperty("code", out _);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return false;
        }
    }
}
