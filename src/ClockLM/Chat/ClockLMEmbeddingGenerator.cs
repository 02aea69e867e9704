using ClockLM.Generation;
using ClockLM.Models;
using Microsoft.Extensions.AI;

namespace ClockLM.Chat;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> over the in-process engine: each text's
/// embedding is the unit-length mean of its tokens' final hidden states (<see cref="MeanPooling"/>), dim floats wide.
/// Texts are tokenized with BOS as in generation. Calls may come from several threads; they run one text at a time on
/// the generator's own processor (KV cache), apart from any chat client's slots.
/// Supported <see cref="EmbeddingGenerationOptions"/>: Dimensions (only the model's width); the others are ignored.
/// </summary>
public sealed class ClockLMEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly Model _model;
    private readonly Transformer _transformer;
    private readonly Lock _lock = new();
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>A generator over <paramref name="model"/> (which the caller disposes).</summary>
    /// <param name="model">The model whose hidden states are pooled.</param>
    /// <param name="contextLength">Longest text in tokens; the model's context length when null.</param>
    public ClockLMEmbeddingGenerator(Model model, int? contextLength = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _transformer = model.CreateTransformer(contextLength);
        ModelId = System.IO.Path.GetFileNameWithoutExtension(model.Path);
        _metadata = new EmbeddingGeneratorMetadata("clocklm", null, ModelId, model.Config.Dim);
    }

    /// <summary>The model's name: its file name without extension.</summary>
    public string ModelId { get; }

    /// <summary>Floats in each embedding: the model's width.</summary>
    public int Dimensions => _model.Config.Dim;

    /// <summary>Longest text in tokens.</summary>
    public int ContextLength => _transformer.ContextLength;

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">A text is longer than the context, or tokenizes to nothing, or
    /// <see cref="EmbeddingGenerationOptions.Dimensions"/> asks for another width.</exception>
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (options?.Dimensions is { } asked && asked != Dimensions)
            throw new ArgumentException($"Dimensions is {asked}; this model's embeddings have {Dimensions}", nameof(options));
        var texts = values.ToList();
        var embeddings = new GeneratedEmbeddings<Embedding<float>>(texts.Count);
        long tokens = 0;
        for (int i = 0; i < texts.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int[] ids = _model.Tokenizer.Encode(texts[i] ?? throw new ArgumentException($"text {i} is null", nameof(values)), addSpecial: true).ToArray();
            if (ids.Length == 0) throw new ArgumentException($"text {i} is empty and the tokenizer adds no BOS: nothing to embed", nameof(values));
            if (ids.Length > ContextLength)
                throw new ArgumentException($"text {i} is {ids.Length} tokens but the context holds {ContextLength}", nameof(values));
            float[] vector = await Task.Run(() =>
            {
                lock (_lock) return MeanPooling.Embed(_model, _transformer, ids);
            }, cancellationToken).ConfigureAwait(false);
            tokens += ids.Length;
            embeddings.Add(new Embedding<float>(vector) { ModelId = ModelId, CreatedAt = DateTimeOffset.UtcNow });
        }
        embeddings.Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens };
        return embeddings;
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType == typeof(Model)) return _model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to release: the model belongs to the caller.</summary>
    public void Dispose()
    {
    }
}
