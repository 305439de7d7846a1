// Temporary entry point; replaced by the command tree.
Console.WriteLine("guided-diffusion");
