using System.Text;
using ClockLM.Gguf;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Sampling;

/// <summary>
/// The allowed-token sets the trie walk computes against the plain path they replace: every token of a real vocabulary
/// checked one by one with a separate automaton that has seen the same bytes.
/// </summary>
public sealed class GrammarConstraintTests
{
    private static Tokenizer LoadVocab(string name)
    {
        using var file = GgufFile.Open(SharedData.Vocab(name));
        return Tokenizer.Load(file);
    }

    /// <summary>Walks a random path of allowed tokens; at every step the walked set must equal the per-token check.</summary>
    [Theory]
    [InlineData("ggml-vocab-llama-spm.gguf", 11)]
    [InlineData("ggml-vocab-gpt-2.gguf", 12)]
    public void TrieWalkEqualsPerTokenCheckOverAWholeVocabulary(string vocab, int seed)
    {
        var tokenizer = LoadVocab(vocab);
        var trie = TokenTrie.For(tokenizer, tokenizer.VocabSize);
        string gbnf = JsonSchemaGrammar.ToGbnf("""
            {"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 12},
                "tags": {"type": "array", "items": {"enum": ["a b", "ünï", "一二"]}, "maxItems": 3},
                "n": {"type": "integer", "minimum": -5, "maximum": 300}},
             "required": ["name", "tags", "n"]}
            """);
        var grammar = Grammar.Parse(gbnf);
        var constraint = new GrammarConstraint(grammar, trie);
        var reference = new GrammarAutomaton(grammar);
        var bytesSoFar = new List<byte>();
        var rng = new Random(seed);
        int steps = 0, narrowSteps = 0;
        while (steps < 40)
        {
            int state = reference.Step(reference.Start, bytesSoFar.ToArray());
            Assert.True(state >= 0);
            var mask = constraint.AllowedTokens().ToArray();
            var allowed = new List<int>();
            for (int id = 0; id < tokenizer.VocabSize; id++)
            {
                var bytes = trie.TokenBytes(id);
                bool expected = bytes.Length > 0
                    ? reference.Step(state, bytes) >= 0
                    : trie.EndOfGenerationIds.Contains(id) && reference.Accepts(state);
                bool actual = ((mask[id >> 6] >> (id & 63)) & 1) != 0;
                Assert.True(expected == actual, $"step {steps}, token {id} '{tokenizer.GetPiece(id)}': per-token check says {expected}");
                Assert.Equal(expected, constraint.Allows(id));
                if (actual) allowed.Add(id);
            }
            Assert.NotEmpty(allowed);
            if (allowed.Count < 100) narrowSteps++;
            int pick = allowed[rng.Next(allowed.Count)];
            if (trie.EndOfGenerationIds.Contains(pick))
            {
                Assert.True(constraint.IsComplete);
                break;
            }
            constraint.Accept(pick);
            bytesSoFar.AddRange(trie.TokenBytes(pick).ToArray());
            steps++;
        }
        Assert.True(narrowSteps > 3, "the path never reached a narrow state");
        Assert.True(constraint.Stats.MaskComputations > 0);
    }

    [Fact]
    public void ConstrainedGreedyPicksTheLargestAllowedLogitAndCachesRepeatedStates()
    {
        var tokenizer = LoadVocab("ggml-vocab-gpt-2.gguf");
        var trie = TokenTrie.For(tokenizer, tokenizer.VocabSize);
        var grammar = Grammar.Parse("root ::= \"[\" [0-9]{1,2} (\",\" [0-9]{1,2})* \"]\"");
        var constraint = new GrammarConstraint(grammar, trie);
        var sampler = new Sampler(tokenizer.VocabSize, SamplerOptions.Greedy, constraint);
        var rng = new Random(3);
        var logits = new float[tokenizer.VocabSize];
        var text = new List<byte>();
        var automaton = new GrammarAutomaton(grammar);
        for (int step = 0; step < 30; step++)
        {
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)rng.NextDouble();
            int state = automaton.Step(automaton.Start, text.ToArray());
            // Plain path: the largest logit among the tokens the grammar accepts one by one (lowest id on ties).
            int best = -1;
            for (int id = 0; id < logits.Length; id++)
            {
                var bytes = trie.TokenBytes(id);
                bool ok = bytes.Length > 0 ? automaton.Step(state, bytes) >= 0 : trie.EndOfGenerationIds.Contains(id) && automaton.Accepts(state);
                if (ok && (best < 0 || logits[id] > logits[best])) best = id;
            }
            int chosen = sampler.Sample(logits);
            Assert.Equal(best, chosen);
            if (trie.EndOfGenerationIds.Contains(chosen)) break;
            text.AddRange(trie.TokenBytes(chosen).ToArray());
        }
        string output = Encoding.UTF8.GetString(text.ToArray());
        Assert.Matches("^\\[(([0-9]{1,2},)*[0-9]{1,2}\\]|([0-9]{1,2},)*[0-9]{0,2})$", output);
        Assert.True(constraint.Stats.MaskCacheHits > 0, "the repeated states were not served from the cache");
    }

    [Fact]
    public void ATokenMayCompleteOneRuleAndStartTheNext()
    {
        // gpt-2 has '":' and ',"' tokens: one token ends a string and starts the colon or the next key.
        var tokenizer = LoadVocab("ggml-vocab-gpt-2.gguf");
        var trie = TokenTrie.For(tokenizer, tokenizer.VocabSize);
        var grammar = Grammar.Parse("root ::= key \":\" value (\",\" key \":\" value)*\nkey ::= \"\\\"\" [a-z]+ \"\\\"\"\nvalue ::= [0-9]+");
        var constraint = new GrammarConstraint(grammar, trie);
        foreach (string piece in new[] { "\"", "ab" })
            constraint.Accept(tokenizer.Encode(piece, addSpecial: false).Single());
        int closeColon = tokenizer.Encode("\":", addSpecial: false).Single();
        Assert.True(constraint.Allows(closeColon));
        constraint.Accept(closeColon);
        constraint.Accept(tokenizer.Encode("12", addSpecial: false).Single());
        int commaQuote = tokenizer.Encode(",\"", addSpecial: false).Single();
        Assert.True(constraint.Allows(commaQuote));
        Assert.False(constraint.Allows(tokenizer.Encode("\",", addSpecial: false).Single()));
        Assert.True(constraint.IsComplete);
    }

    [Fact]
    public void EndOfGenerationIsAllowedOnlyWhereTheGrammarIsComplete()
    {
        var tokenizer = LoadVocab("ggml-vocab-gpt-2.gguf");
        var trie = TokenTrie.For(tokenizer, tokenizer.VocabSize);
        var constraint = new GrammarConstraint(Grammar.Parse("root ::= \"yes\" | \"no\""), trie);
        int eos = tokenizer.EosId;
        Assert.False(constraint.Allows(eos));
        foreach (int id in tokenizer.Encode("yes", addSpecial: false)) constraint.Accept(id);
        Assert.True(constraint.IsComplete);
        Assert.True(constraint.Allows(eos));
        // Nothing but the end may follow.
        var mask = constraint.AllowedTokens();
        int count = 0;
        for (int id = 0; id < tokenizer.VocabSize; id++) count += (int)((mask[id >> 6] >> (id & 63)) & 1);
        Assert.Equal(trie.EndOfGenerationIds.Length, count);
        Assert.Throws<InvalidOperationException>(() => constraint.Accept(tokenizer.Encode("x", addSpecial: false)[^1]));
    }

    [Fact]
    public void SampledDrawsFollowTheGrammarForEverySeed()
    {
        var tokenizer = LoadVocab("ggml-vocab-llama-spm.gguf");
        var trie = TokenTrie.For(tokenizer, tokenizer.VocabSize);
        var grammar = Grammar.Parse("root ::= (\"cat\" | \"dog\" | \"一\") (\" \" (\"cat\" | \"dog\" | \"一\")){0,4}");
        var logits = new float[tokenizer.VocabSize];
        var rng = new Random(5);
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)(rng.NextDouble() * 4);
        for (ulong seed = 1; seed <= 20; seed++)
        {
            var constraint = new GrammarConstraint(grammar, trie);
            var sampler = new Sampler(tokenizer.VocabSize, new SamplerOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = seed }, constraint);
            var ids = new List<int>();
            for (int step = 0; step < 40; step++)
            {
                int id = sampler.Sample(logits);
                if (tokenizer.IsEndOfGeneration(id)) break;
                ids.Add(id);
            }
            string text = Encoding.UTF8.GetString(ids.SelectMany(id => trie.TokenBytes(id).ToArray()).ToArray());
            Assert.Matches("^(cat|dog|一)( (cat|dog|一)){0,4}$", text);
        }
    }
}
