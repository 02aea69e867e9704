using ClockLM.Models;
using ClockLM.Steering;
using Xunit.Abstractions;

namespace ClockLM.Tests.Steering;

/// <summary>
/// The worked example of docs/steering.md: a "happy vs sad" control vector made from eight prompt pairs on stories260K
/// steers the next word after "She was very" when added after layer 3: the logit of "▁happy" rises with the scale, and
/// so does its lead over "▁sa" (the start of " sad").
/// </summary>
public class HappySadSteeringTests(ITestOutputHelper output)
{
    public static readonly string[] Happy =
    [
        "Lily was very happy. She smiled and laughed all day.",
        "Tom was happy to play with his friends. He had so much fun.",
        "The little girl was happy and excited. She jumped and laughed.",
        "Ben felt happy and proud. He smiled at his mom.",
        "The dog was happy. It wagged its tail and played in the sun.",
        "Sue loved her new toy. She was so happy and she hugged her mom.",
        "The bird sang a happy song. Everyone smiled.",
        "Max was glad and happy. He laughed and danced.",
    ];

    public static readonly string[] Sad =
    [
        "Lily was very sad. She cried and cried all day.",
        "Tom was sad to lose his friends. He had no fun.",
        "The little girl was sad and scared. She sat and cried.",
        "Ben felt sad and angry. He frowned at his mom.",
        "The dog was sad. It hid under the bed in the dark.",
        "Sue lost her new toy. She was so sad and she cried to her mom.",
        "The bird sang a sad song. Everyone cried.",
        "Max was upset and sad. He cried and sulked.",
    ];

    public const string Prompt = "Once upon a time, there was a little girl named Lily. She was very";

    [Fact]
    public void HappysLogitAndItsLeadOverSadRiseWithTheScale()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var vector = ControlVectorMaker.Make(model, Happy, Sad);
        int happy = model.Tokenizer.Encode("happy", addSpecial: false)[^1], sad = model.Tokenizer.Encode("sad", addSpecial: false)[0];
        Assert.Equal(("▁happy", "▁sa"), (model.Tokenizer.GetPiece(happy), model.Tokenizer.GetPiece(sad)));
        int[] prompt = model.Tokenizer.Encode(Prompt).ToArray();
        var happyLogits = new List<float>();
        var sadLogits = new List<float>();
        for (int scale = -4; scale <= 4; scale++)
        {
            var t = model.CreateTransformer(64);
            t.Steering = ResidualSteering.Create(model.Config, [new SteeringTerm(vector.Directions, scale, 3, 3)]);
            var logits = t.Evaluate(prompt, 0);
            happyLogits.Add(logits[happy]);
            sadLogits.Add(logits[sad]);
            output.WriteLine($"scale {scale,2}: happy {logits[happy]:F3}  sa {logits[sad]:F3}");
        }
        for (int i = 1; i < happyLogits.Count; i++)
        {
            Assert.True(happyLogits[i] > happyLogits[i - 1], $"happy's logit does not rise from scale {i - 5} to {i - 4}");
            Assert.True(happyLogits[i] - sadLogits[i] > happyLogits[i - 1] - sadLogits[i - 1], $"happy's lead over sa does not grow from scale {i - 5} to {i - 4}");
        }
    }
}
