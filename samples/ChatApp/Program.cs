using System.Text;
using ClockLM.Chat;
using ClockLM.Models;
using Microsoft.Extensions.AI;

// The built-in model comes with the ClockLM package: it is copied to models/ beside this app at build time.
using var model = BuiltInModel.Load();
using IChatClient chat = new ClockLMChatClient(model);
using IEmbeddingGenerator<string, Embedding<float>> embeddings = new ClockLMEmbeddingGenerator(model);

string question = args.Length > 0 ? string.Join(' ', args) : "Who made the heaven and the earth?";
Console.WriteLine($"> {question}");
var answer = new StringBuilder();
await foreach (var update in chat.GetStreamingResponseAsync(question, new ChatOptions { Temperature = 0, MaxOutputTokens = 40 }))
{
    Console.Write(update.Text);
    answer.Append(update.Text);
}
Console.WriteLine();

// How close the answer is to the question, as the cosine of their embeddings (unit vectors: a dot product).
var vectors = await embeddings.GenerateAsync([question, answer.ToString()]);
float cosine = 0;
for (int i = 0; i < model.Config.Dim; i++) cosine += vectors[0].Vector.Span[i] * vectors[1].Vector.Span[i];
Console.WriteLine($"({chat.GetService<ChatClientMetadata>()?.DefaultModelId}: {answer.Length} characters; cosine to the question {cosine:F3})");
return answer.Length > 0 ? 0 : 1;
