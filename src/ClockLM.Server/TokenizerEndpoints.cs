using System.Text.Json.Nodes;
using ClockLM.Tokenizers;
using Microsoft.AspNetCore.Http;

namespace ClockLM.Server;

/// <summary>llama.cpp's <c>/tokenize</c> and <c>/detokenize</c>: they need the vocabulary only, so they also answer on a
/// server started with a vocabulary-only file.</summary>
internal sealed class TokenizerEndpoints(Tokenizer tokenizer)
{
    public async Task TokenizeAsync(HttpContext context)
    {
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        RequestFields.Tokenize.Check(body);
        string content = body.String("content") ?? throw ApiException.BadRequest("content is required: the text to tokenize", "content");
        bool addSpecial = body.Bool("add_special") ?? false;
        bool withPieces = body.Bool("with_pieces") ?? false;
        bool parseSpecial = body.Bool("parse_special") ?? false;
        List<int> ids;
        try
        {
            ids = tokenizer.Encode(content, addSpecial, parseSpecial);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw ApiException.BadRequest($"content cannot be tokenized by this vocabulary: {e.Message}", "content");
        }
        var tokens = new JsonArray();
        foreach (int id in ids)
            tokens.Add(withPieces ? new JsonObject { ["id"] = id, ["piece"] = tokenizer.GetPiece(id) } : JsonValue.Create(id));
        await context.Response.WriteJsonAsync(new JsonObject { ["tokens"] = tokens }, context.RequestAborted);
    }

    public async Task DetokenizeAsync(HttpContext context)
    {
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        RequestFields.Detokenize.Check(body);
        var ids = body.Get("tokens") is { } t
            ? JsonRequest.TokenIds(t, "tokens", tokenizer.VocabSize)
            : throw ApiException.BadRequest("tokens is required: an array of token ids", "tokens");
        await context.Response.WriteJsonAsync(new JsonObject { ["content"] = tokenizer.Decode(ids) }, context.RequestAborted);
    }
}
