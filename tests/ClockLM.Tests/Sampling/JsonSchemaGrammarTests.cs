using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ClockLM.Gguf;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using ClockLM.Tokenizers;
using Json.Schema;
using JsonSchemaException = ClockLM.Sampling.Grammars.JsonSchemaException;

namespace ClockLM.Tests.Sampling;

/// <summary>
/// JSON Schema to GBNF: sentences the grammar accepts and refuses for the cases llama.cpp's converter tests cover
/// (written anew), integer ranges and patterns checked exhaustively against plain arithmetic and .NET regexes, random
/// generations validated by JsonSchema.Net, and a clear error for each unsupported keyword.
/// </summary>
public sealed class JsonSchemaGrammarTests
{
    private static Grammar Compile(string schema) => Grammar.Parse(JsonSchemaGrammar.ToGbnf(schema));

    [Theory]
    [InlineData("""{"type": "boolean"}""", "true|false", "1|True|\"true\"")]
    [InlineData("""{"type": "null"}""", "null", "nil|\"\"")]
    [InlineData("""{"type": "integer"}""", "0|-7|123456", "01|-0x|1.5|+1")]
    [InlineData("""{"type": "number"}""", "0|-7.25|1e9|2.5E-3", "01|.5|1.|-")]
    [InlineData("""{"type": "string"}""", "\"\"|\"a \\\"b\\\" \\\\ \\u00e9 ü\"", "\"a|'a'|\"\t\"")]
    [InlineData("""{"type": "string", "minLength": 2, "maxLength": 3}""", "\"ab\"|\"a\\nb\"|\"abc\"", "\"a\"|\"abcd\"")]
    [InlineData("""{"enum": ["red", 1, null, {"a": [1]}, "é\"x"]}""", "\"red\"|1|null|{\"a\":[1]}|\"é\\\"x\"", "\"blue\"|2|{\"a\":[2]}")]
    [InlineData("""{"const": {"k": "v"}}""", "{\"k\":\"v\"}", "{\"k\":\"w\"}|{}")]
    [InlineData("""{"type": ["string", "null"]}""", "\"x\"|null", "1|true")]
    [InlineData("""{"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3}""", "[1]|[1,2]|[1, 2,\n 3]", "[]|[1,2,3,4]|[\"a\"]")]
    [InlineData("""{"type": "array", "items": {"type": "integer"}, "maxItems": 2}""", "[]|[5]|[5,6]", "[5,6,7]")]
    [InlineData("""{"prefixItems": [{"type": "string"}, {"type": "integer"}]}""", "[\"a\",1]", "[\"a\"]|[1,\"a\"]|[\"a\",1,2]")]
    [InlineData("""{"prefixItems": [{"type": "string"}], "items": {"type": "boolean"}}""", "[\"a\"]|[\"a\",true,false]", "[\"a\",1]|[]")]
    [InlineData("""{"items": [{"format": "date"}, {"format": "uuid"}]}""", "[\"2024-01-31\",\"123e4567-e89b-12d3-a456-426614174000\"]", "[\"2024-01-31\"]|[1,2]")]
    [InlineData("""{"type": "array", "prefixItems": {"type": "string"}}""", "[]|[\"a\",\"b\"]", "[1]")]
    [InlineData("""{"anyOf": [{"$ref": "#/definitions/foo"}, {"$ref": "#/definitions/bar"}], "definitions": {"foo": {"properties": {"a": {"type": "number"}}}, "bar": {"properties": {"b": {"type": "number"}}}}, "type": "object"}""",
        "{}|{\"a\":1}|{\"b\":2.5}", "{\"a\":\"x\"}|[]")]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}""",
        "{\"a\":1}|{\"a\":1,\"b\":\"x\"}|{ \"a\": 1, \"b\": \"x\" }", "{}|{\"b\":\"x\"}|{\"a\":1,\"c\":2}|{\"b\":\"x\",\"a\":1}")]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}}""",
        "{}|{\"a\":1}|{\"b\":1}|{\"c\":1}|{\"a\":1,\"c\":3}|{\"a\":1,\"b\":2,\"c\":3}", "{,}|{\"a\":1,}|{\"c\":1,\"a\":1}")]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "boolean"}}""",
        "{\"a\":1}|{\"a\":1,\"b\":true}|{\"ab\":false}|{\"\":true}|{\"b\":true,\"c\":false}", "{\"a\":1,\"a\":true}|{\"a\":true}|{\"b\":1}")]
    [InlineData("""{"type": "object"}""", "{}|{\"x\":[1,{\"y\":null}]}", "[]|{x:1}")]
    [InlineData("""{"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"k": {"const": 1}}, "required": ["k"]}]}""", "5|{\"k\":1}", "{}|\"5\"")]
    [InlineData("""{"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]}""",
        "{\"a\":1,\"b\":true}", "{\"a\":1}|{\"b\":true}")]
    [InlineData("""{"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}}, "$ref": "#/$defs/node"}""",
        "{\"v\":1}|{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":3}]}]}", "{\"v\":1,\"kids\":[{}]}")]
    [InlineData("""{"definitions": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/definitions/n"}}""", "[1,2]", "[\"1\"]")]
    [InlineData("""{"type": "string", "format": "date"}""", "\"2024-02-29\"|\"1999-12-31\"", "\"2024-13-01\"|\"2024-1-01\"|\"24-01-01\"")]
    [InlineData("""{"type": "string", "format": "time"}""", "\"23:59:59Z\"|\"00:00:00.123+05:30\"", "\"24:00:00Z\"|\"12:00:00\"")]
    [InlineData("""{"type": "string", "format": "date-time"}""", "\"2024-02-29T12:30:00Z\"", "\"2024-02-29 12:30:00Z\"")]
    [InlineData("""{"type": "string", "format": "uuid"}""", "\"123e4567-e89b-12d3-a456-426614174000\"", "\"123e4567e89b12d3a456426614174000\"")]
    [InlineData("""{"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"}""", "\"AB-123\"", "\"AB-12\"|\"ab-123\"|\" AB-123\"")]
    [InlineData("""{"type": "string", "pattern": "ab"}""", "\"ab\"|\"xaby\"", "\"a\"|\"ba\"")]
    [InlineData("""{}""", "1|\"s\"|[]|{\"a\":null}", "|x")]
    [InlineData("""{"title": "T", "description": "d", "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "integer", "default": 3}""", "3", "x")]
    public void AcceptsValidTextsAndRefusesOthers(string schema, string valid, string invalid)
    {
        var grammar = Compile(schema);
        foreach (string text in valid.Split('|'))
            Assert.True(GrammarTests.Matches(grammar, text), $"{text} should match {schema}\n{grammar.Source}");
        foreach (string text in invalid.Split('|'))
            Assert.False(GrammarTests.Matches(grammar, text), $"{text} should not match {schema}\n{grammar.Source}");
    }

    /// <summary>Every integer in a window around random ranges matches exactly when it is in the range.</summary>
    [Fact]
    public void IntegerRangesMatchExactlyTheirMembers()
    {
        var rng = new Random(17);
        var ranges = new List<(long? Min, long? Max)> { (0, 0), (-1, 1), (7, 7), (-250, -3), (15, 250), (99, 1001), (0, null), (null, 0), (120, null), (null, -45), (-9, 9) };
        for (int i = 0; i < 25; i++)
        {
            long a = rng.Next(-3000, 3000), b = rng.Next(-3000, 3000);
            ranges.Add((Math.Min(a, b), Math.Max(a, b)));
        }
        foreach (var (min, max) in ranges)
        {
            var schema = new JsonObject { ["type"] = "integer" };
            if (min is { } lo) schema["minimum"] = lo;
            if (max is { } hi) schema["maximum"] = hi;
            var grammar = Compile(schema.ToJsonString());
            long from = (min ?? max ?? 0) - 120, to = (max ?? min ?? 0) + 120;
            for (long n = from; n <= to; n++)
            {
                bool member = (min is null || n >= min) && (max is null || n <= max);
                Assert.True(member == GrammarTests.Matches(grammar, n.ToString()), $"{n} in [{min}, {max}]: expected {member}");
            }
            Assert.False(GrammarTests.Matches(grammar, "-0"));
            if (min is null || min <= 5) Assert.False(GrammarTests.Matches(grammar, "05"));
        }
        // Exclusive and fractional bounds round inward.
        var g = Compile("""{"type": "integer", "exclusiveMinimum": 2, "maximum": 7.5}""");
        Assert.Equal("3456", string.Concat(Enumerable.Range(0, 10).Where(n => GrammarTests.Matches(g, n.ToString())).Select(n => n.ToString()))[..4]);
        Assert.True(GrammarTests.Matches(g, "7"));
        Assert.False(GrammarTests.Matches(g, "8"));
    }

    /// <summary>Patterns agree with .NET's regex (ECMAScript-like subset) on random strings, quoted as JSON.</summary>
    [Theory]
    [InlineData("^[a-c]+(x|yz)?$", "abcxyz-")]
    [InlineData("^\\d{2,3}(\\.\\d)?$", "0123.a")]
    [InlineData("^(?:ab|c)*d$", "abcd")]
    [InlineData("^[^a]\\w?$", "ab_ \"\\")]
    [InlineData("^a.c$", "abc\"")]
    [InlineData("b+", "abc")]
    [InlineData("^\"[\\\\]+\"$", "\"\\a")]
    public void PatternsAgreeWithRegex(string pattern, string alphabet)
    {
        var grammar = Compile(new JsonObject { ["type"] = "string", ["pattern"] = pattern }.ToJsonString());
        var regex = new Regex(pattern, RegexOptions.ECMAScript);
        var rng = new Random(pattern.Length);
        int matched = 0;
        for (int n = 0; n < 1500; n++)
        {
            var sb = new StringBuilder();
            int length = rng.Next(0, 7);
            for (int i = 0; i < length; i++) sb.Append(alphabet[rng.Next(alphabet.Length)]);
            string text = sb.ToString();
            bool expected = regex.IsMatch(text);
            matched += expected ? 1 : 0;
            string json = JsonSerializer.Serialize(text, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            Assert.True(expected == GrammarTests.Matches(grammar, json), $"{json} against /{pattern}/: regex says {expected}");
        }
        Assert.True(matched > 10, $"only {matched} random strings matched /{pattern}/");
    }

    [Theory]
    [InlineData("""{"type": "array", "uniqueItems": true}""", "uniqueItems", "#")]
    [InlineData("""{"not": {"type": "string"}}""", "not", "#")]
    [InlineData("""{"if": {}, "then": {}}""", "if", "#")]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "object", "patternProperties": {"^x": {}}}}}""", "patternProperties", "#/properties/a")]
    [InlineData("""{"type": "integer", "multipleOf": 3}""", "multipleOf", "#")]
    [InlineData("""{"type": "string", "format": "email"}""", "format", "#")]
    [InlineData("""{"type": "number", "minimum": 0}""", "minimum", "#")]
    [InlineData("""{"$ref": "https://example.com/s.json"}""", "$ref", "#")]
    [InlineData("""{"$ref": "#/$defs/missing"}""", "$ref", "#")]
    [InlineData("""{"type": "object", "minProperties": 1}""", "minProperties", "#")]
    [InlineData("""{"type": "string", "pattern": "^(?=a)b$"}""", "pattern", "#")]
    [InlineData("""{"type": "string", "pattern": "^(a)\\1$"}""", "pattern", "#")]
    [InlineData("""{"type": "strange"}""", "type", "#")]
    [InlineData("""{"type": "array", "items": {"type": "object", "dependentRequired": {}}}""", "dependentRequired", "#/items")]
    [InlineData("""{"anyOf": [{"type": "string"}], "type": "object"}""", "type", "#")]
    [InlineData("""{"allOf": [{"properties": {"a": {}}}], "type": "object"}""", "type", "#")]
    [InlineData("""false""", "false", "#")]
    public void UnsupportedKeywordsAreNamed(string schema, string keyword, string path)
    {
        var e = Assert.Throws<JsonSchemaException>(() => JsonSchemaGrammar.ToGbnf(schema));
        Assert.Equal(keyword, e.Keyword);
        Assert.Equal(path, e.Path);
        Assert.Contains(keyword, e.Message);
    }

    /// <summary>The nested schema the generation tests use: objects in arrays, enums, bounded integers and a $ref.</summary>
    public const string NestedSchema = """
        {
          "$defs": {
            "item": {
              "type": "object",
              "properties": {
                "name": {"type": "string", "maxLength": 10},
                "kind": {"enum": ["fruit", "tool", "animal"]},
                "count": {"type": "integer", "minimum": 1, "maximum": 99}
              },
              "required": ["name", "kind", "count"],
              "additionalProperties": false
            }
          },
          "type": "object",
          "properties": {
            "id": {"type": "integer", "minimum": -5, "maximum": 500},
            "ok": {"type": "boolean"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 3},
            "note": {"type": ["string", "null"], "maxLength": 8}
          },
          "required": ["id", "items"],
          "additionalProperties": false
        }
        """;

    /// <summary>Checks <paramref name="json"/> against <paramref name="schema"/> with JsonSchema.Net (formats included).</summary>
    internal static void AssertValid(string schema, string json, string context)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new Xunit.Sdk.XunitException($"{context}: not JSON ({e.Message}): {json}"); }
        using var _ = document;
        var results = JsonSchema.FromText(schema).Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = true });
        Assert.True(results.IsValid, $"{context}: invalid against the schema: {json}\n" +
            string.Join("\n", (results.Details ?? []).Where(d => d.Errors is { Count: > 0 }).SelectMany(d => d.Errors!.Select(kv => $"{d.InstanceLocation}: {kv.Value}"))));
    }

    /// <summary>Random logits over the gpt-2 vocabulary, 50 seeds: every text is complete and valid.</summary>
    [Fact]
    public void RandomDrawsOverARealVocabularyAreValidAgainstTheSchema()
    {
        Tokenizer tokenizer;
        using (var file = GgufFile.Open(SharedData.Vocab("ggml-vocab-gpt-2.gguf"))) tokenizer = Tokenizer.Load(file);
        var trie = TokenTrie.For(tokenizer, tokenizer.VocabSize);
        var grammar = Compile(NestedSchema);
        var logits = new float[tokenizer.VocabSize];
        for (ulong seed = 1; seed <= 50; seed++)
        {
            // Random logits per seed; the draws at temperature 1 over the top 100 allowed tokens make the paths differ.
            var rng = new Random((int)seed);
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)(rng.NextDouble() * 3);
            logits[tokenizer.EosId] = 3; // the end competes with everything else once allowed
            var sampler = new Sampler(tokenizer.VocabSize, new SamplerOptions { Temperature = 1, TopK = 100, TopP = 1, MinP = 0, Seed = seed },
                new GrammarConstraint(grammar, trie));
            var bytes = new List<byte>();
            bool ended = false;
            for (int step = 0; step < 400 && !ended; step++)
            {
                int id = sampler.Sample(logits);
                ended = tokenizer.IsEndOfGeneration(id);
                if (!ended) bytes.AddRange(trie.TokenBytes(id).ToArray());
            }
            string json = Encoding.UTF8.GetString(bytes.ToArray());
            Assert.True(ended, $"seed {seed}: no end after 400 tokens: {json}");
            AssertValid(NestedSchema, json, $"seed {seed}");
        }
    }
}
